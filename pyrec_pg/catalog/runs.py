"""Rows of pyrec._runs: a long job's progress, committed per phase so other sessions see it."""

from __future__ import annotations

from pyrec_pg.catalog.models import Model
from pyrec_pg.db import Db
from pyrec_pg.errors import (
    ActiveTransaction,
    InvalidTransactionTermination,
    sqlstate_of,
)


class Run:
    """One training or batch job; `commit` makes its progress visible to other sessions."""

    def __init__(
        self,
        db: Db,
        model: Model,
        kind: str,
        target: str | None = None,
        procedure: str | None = None,
    ) -> None:
        self.db = db
        self.kind = kind
        self.procedure = f"pyrec.{procedure or 'train'}"
        self.run_id = int(
            db.scalar(
                "INSERT INTO pyrec._runs (model_id, kind, target, status, phase, pid,"
                " backend_start) SELECT $1, $2, $3, 'running', 'starting', pg_backend_pid(),"
                " backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                " RETURNING run_id",
                [model.model_id, kind, target],
                ["int4", "text", "text"],
            )
        )
        self.commit()

    def commit(self) -> None:
        try:
            self.db.commit()
        except self.db.Error as e:  # CALL inside BEGIN ... COMMIT cannot commit
            if sqlstate_of(e) == InvalidTransactionTermination.sqlstate:
                what = self.procedure
                raise ActiveTransaction(
                    f"{what} cannot run inside a transaction block",
                    hint=f"run CALL {what}(...) on its own, outside BEGIN ... COMMIT",
                ) from e
            raise

    def phase(self, phase: str, percent: float, rows_read: int | None = None) -> None:
        self.db.run(
            "UPDATE pyrec._runs SET phase = $2, percent = $3,"
            " rows_read = coalesce($4, rows_read) WHERE run_id = $1",
            [self.run_id, phase, percent, rows_read],
            ["int8", "text", "float4", "int8"],
        )
        self.commit()

    def finish(self, status: str, version: int | None, message: str | None) -> None:
        self.db.run(
            "UPDATE pyrec._runs SET status = $2, version = coalesce($3, version), message = $4,"
            " percent = CASE WHEN $2 = 'succeeded' THEN 100 ELSE percent END,"
            " finished_at = clock_timestamp() WHERE run_id = $1",
            [self.run_id, status, version, message],
            ["int8", "text", "int4", "text"],
        )


def abandoned(db: Db, kind: str) -> list[int]:
    """Mark runs whose backend is gone (killed, crashed, restarted) failed; return their ids."""
    rows = db.rows(
        "UPDATE pyrec._runs r SET status = 'failed', finished_at = clock_timestamp(),"
        " message = 'the backend exited before finishing'"
        " WHERE r.kind = $1 AND r.status = 'running' AND NOT EXISTS (SELECT 1"
        " FROM pg_stat_activity a WHERE a.pid = r.pid AND a.backend_start = r.backend_start)"
        " RETURNING r.run_id",
        [kind],
        ["text"],
    )
    return [int(r["run_id"]) for r in rows]
