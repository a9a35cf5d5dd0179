"""A hot standby as the source of a job's reads: checked to be a copy of the database the job
writes to, with how far its replay stands behind the primary."""

from __future__ import annotations

from typing import Any

from pyrec_pg.db import Db
from pyrec_pg.errors import StandbyMismatch

# the cluster (one system identifier for a primary and all its physical standbys), the
# database (a standby replays its oid and name), and whether the server replays WAL
_IDENTITY = (
    "SELECT s.system_identifier::text AS system, d.datname::text AS database,"
    " d.oid::int8 AS oid, pg_is_in_recovery() AS recovery"
    " FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()"
)
HINT = (
    "give the read DSN of a hot standby streaming from the primary, with the same dbname:"
    " SELECT system_identifier FROM pg_control_system() shows the same number on both"
)


def check(primary: Db, standby: Db) -> dict[str, Any]:
    """Refuse a `standby` that is not a hot standby of `primary`'s database (StandbyMismatch,
    55000, naming what differs); return where its replay stands when the reading begins:
    `replay_lsn`, `replayed_until` (commit time of the last transaction it replayed, ISO
    8601), `lag_bytes` (the primary's WAL it has not replayed yet) and `lag_seconds` (0 when
    caught up, else the primary's clock minus `replayed_until`: an upper bound, since an
    idle primary still writes a little WAL)."""
    mine, theirs = primary.one(_IDENTITY), standby.one(_IDENTITY)
    assert mine is not None and theirs is not None
    if theirs["system"] != mine["system"]:
        raise StandbyMismatch(
            "the read DSN reaches another cluster: its database system identifier is"
            f" {theirs['system']}, the primary's is {mine['system']}",
            hint=HINT,
        )
    if not theirs["recovery"]:
        raise StandbyMismatch(
            "the read DSN reaches a server of the primary's cluster that is not a standby"
            " (pg_is_in_recovery() is false there: the primary itself, or a promoted standby)",
            hint="point the read DSN at a hot standby of the primary, or leave it out to read"
            " on the primary",
        )
    if (theirs["database"], theirs["oid"]) != (mine["database"], mine["oid"]):
        raise StandbyMismatch(
            f'the read DSN reaches database "{theirs["database"]}" (oid {theirs["oid"]}),'
            f' not the primary\'s "{mine["database"]}" (oid {mine["oid"]})',
            hint=f"set dbname={mine['database']} in the read DSN",
        )
    replay = standby.one(
        "SELECT pg_last_wal_replay_lsn()::text AS lsn,"
        " to_json(pg_last_xact_replay_timestamp()) #>> '{}' AS replayed_until"
    )
    assert replay is not None
    standby.rollback()  # read only: ending its transaction releases its catalog locks
    lag = primary.one(
        # the insert position: WAL of a commit not yet written (synchronous_commit off) counts
        "SELECT greatest(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn), 0)::int8"
        " AS bytes,"
        " extract(epoch FROM clock_timestamp() - $2::timestamptz)::float8 AS seconds",
        [replay["lsn"], replay["replayed_until"]],
        ["text", "text"],
    )
    assert lag is not None
    behind = None if lag["bytes"] is None else int(lag["bytes"])
    seconds = None
    if behind == 0:
        seconds = 0.0
    elif lag["seconds"] is not None:
        seconds = round(max(float(lag["seconds"]), 0.0), 3)
    return {
        "replay_lsn": replay["lsn"],
        "replayed_until": replay["replayed_until"],
        "lag_bytes": behind,
        "lag_seconds": seconds,
    }
