"""Reading on a hot standby, without a server: the Db's reader, the standby check's refusals,
the training notice, the CLI's options."""

from __future__ import annotations

from typing import Any

import pytest

from pyrec_pg import cli
from pyrec_pg.catalog.models import Model
from pyrec_pg.db import Db, standby
from pyrec_pg.db.stub import SPIError
from pyrec_pg.entrypoints.server import _read_from
from pyrec_pg.errors import NotReady, SerializationFailure, StandbyMismatch, UndefinedTable, lookup
from pyrec_pg.jobs.training import _reading_sources

from .fakes import FakePlan, FakePlpy

PRIMARY = {"system": "7345", "database": "shop", "oid": 16384, "recovery": False}


class Scripted(FakePlpy):
    """Answers each query by the first (fragment, rows) pair whose fragment it contains, others
    with no rows."""

    SPIError = SPIError

    def __init__(self, answers: list[tuple[str, list[dict[str, Any]]]]) -> None:
        super().__init__()
        self.answers = answers

    def execute(self, query: Any, args: Any = None, /) -> list[dict[str, Any]]:
        self.calls.append(("execute", query, args))
        text = query.query if isinstance(query, FakePlan) else query
        return next((rows for fragment, rows in self.answers if fragment in text), [])


def pair(**theirs: Any) -> tuple[Db, Db, Scripted]:
    """A primary's Db and a reader's, whose identity differs from the primary's by `theirs`."""
    primary = Scripted(
        [
            ("pg_control_system", [PRIMARY]),
            ("pg_current_wal_insert_lsn", [{"bytes": 0, "seconds": 12.5}]),
        ]
    )
    reader = Scripted(
        [
            ("pg_control_system", [{**PRIMARY, "recovery": True, **theirs}]),
            ("pg_last_wal_replay_lsn", [{"lsn": "0/3000148", "replayed_until": "2026-01-01"}]),
        ]
    )
    return Db(primary), Db(reader), primary


def test_a_db_reads_through_itself_unless_given_a_reader() -> None:
    db = Db(FakePlpy())
    assert db.reader is db
    standby_db = Db(FakePlpy())
    assert Db(FakePlpy(), standby_db).reader is standby_db


def test_a_caught_up_standby_of_the_same_database_passes() -> None:
    primary, reader, plpy = pair()
    assert standby.check(primary, reader) == {
        "replay_lsn": "0/3000148",
        "replayed_until": "2026-01-01",
        "lag_bytes": 0,
        "lag_seconds": 0.0,  # caught up: the time since the last commit is no lag
    }
    lag = [c for c in plpy.calls if c[0] == "execute" and isinstance(c[1], FakePlan)]
    assert lag[-1][2] == ["0/3000148", "2026-01-01"]


def test_a_standby_behind_reports_bytes_and_an_upper_bound_of_seconds() -> None:
    primary, reader, plpy = pair()
    plpy.answers[1] = ("pg_current_wal_insert_lsn", [{"bytes": 8192, "seconds": 3.25}])
    found = standby.check(primary, reader)
    assert (found["lag_bytes"], found["lag_seconds"]) == (8192, 3.25)
    plpy.answers[1] = ("pg_current_wal_insert_lsn", [{"bytes": 8192, "seconds": None}])
    assert standby.check(primary, reader)["lag_seconds"] is None  # nothing replayed yet


@pytest.mark.parametrize(
    ("theirs", "message", "hint"),
    [
        (
            {"system": "9999"},
            "the read DSN reaches another cluster: its database system identifier is 9999,"
            " the primary's is 7345",
            "pg_control_system()",
        ),
        (
            {"recovery": False},
            "the read DSN reaches a server of the primary's cluster that is not a standby",
            "leave it out to read on the primary",
        ),
        (
            {"database": "postgres", "oid": 5},
            'the read DSN reaches database "postgres" (oid 5), not the primary\'s "shop"'
            " (oid 16384)",
            "set dbname=shop in the read DSN",
        ),
        (
            {"oid": 99999},  # dropped and created again since the standby replayed it
            'the read DSN reaches database "shop" (oid 99999)',
            "dbname=shop",
        ),
    ],
    ids=["another cluster", "not in recovery", "another database", "another incarnation"],
)
def test_a_reader_that_is_not_a_standby_of_the_database_is_refused(
    theirs: dict[str, Any], message: str, hint: str
) -> None:
    primary, reader, _ = pair(**theirs)
    with pytest.raises(StandbyMismatch) as info:
        standby.check(primary, reader)
    e = info.value
    assert e.message.startswith(message) and e.hint and hint in e.hint
    assert isinstance(e, NotReady) and e.sqlstate == "55000"
    assert lookup("55000") is NotReady  # a refinement: 55000 keeps its one class


def test_the_notice_says_where_the_data_was_read() -> None:
    assert _read_from(None) == ""
    source = {"replay_lsn": "0/1", "replayed_until": "2026-01-01T03:00:00.654494+00:00"}
    assert _read_from({**source, "lag_bytes": 0, "lag_seconds": 0.0}) == (
        "; read from a hot standby caught up with the primary"
        " (last commit replayed: 2026-01-01 03:00:00+00:00)"
    )
    assert _read_from({**source, "lag_bytes": 4096, "lag_seconds": 2.25}).startswith(
        "; read from a hot standby 4096 bytes of WAL (at most 2.2 s) behind the primary ("
    )
    bare = {"replay_lsn": None, "replayed_until": None, "lag_bytes": 10, "lag_seconds": None}
    assert _read_from(bare) == "; read from a hot standby 10 bytes of WAL behind the primary"


def test_read_dsn_is_an_option_of_the_external_trainer_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = cli.parser().parse_args(["train", "movies", "--read-dsn", "host=standby dbname=x"])
    assert args.read_dsn == "host=standby dbname=x" and not args.in_database
    with pytest.raises(SystemExit) as info:
        cli.parser().parse_args(["train", "movies", "--in-database", "--read-dsn", "x"])
    assert info.value.code == 2
    assert "not allowed with argument --in-database" in capsys.readouterr().err


MODEL = Model(1, "movies", "als", "public.ratings", None, None, {}, {}, None)
CONFLICT = SPIError("canceling statement due to conflict with recovery", "40001")


def reading(reader: bool) -> tuple[Db, Scripted, Scripted]:
    """A primary's Db (with a standby's as its reader, or none) and the two recording plpys."""
    primary = Scripted([("current_setting", [{"v": None}])])
    replica = Scripted([])
    return Db(primary, Db(replica) if reader else None), primary, replica


def test_reading_goes_through_the_reader_whose_transaction_ends_with_it() -> None:
    db, primary, replica = reading(reader=True)
    with _reading_sources(db, MODEL) as source:
        assert source is db.reader and source is not db
    assert [c[1].query for c in replica.calls if c[0] == "execute"] == [
        "SELECT set_config('lock_timeout', $1, true)"
    ]
    assert replica.calls[-1] == ("rollback",)  # no lock or snapshot held while fitting
    assert ("rollback",) not in primary.calls
    db, primary, _ = reading(reader=False)  # in the server: as before, all on one Db
    with _reading_sources(db, MODEL) as source:
        assert source is db
    assert ("rollback",) not in primary.calls
    assert any("set_config" in c[1].query for c in primary.calls if c[0] == "execute")


def test_a_read_cancelled_by_the_standby_s_replay_says_what_to_set() -> None:
    db, _, _ = reading(reader=True)
    with pytest.raises(SerializationFailure) as info, _reading_sources(db, MODEL):
        raise CONFLICT
    e = info.value
    assert e.sqlstate == "40001" and e.hint and "hot_standby_feedback = on" in e.hint
    assert e.message == (
        'reading the relations of model "movies" on the standby was cancelled:'
        " canceling statement due to conflict with recovery"
    )
    db, _, _ = reading(reader=False)  # on the primary there is no replay to blame
    with pytest.raises(SPIError), _reading_sources(db, MODEL):
        raise CONFLICT


def test_an_error_read_on_the_standby_says_so_in_its_detail() -> None:
    db, _, _ = reading(reader=True)
    with pytest.raises(UndefinedTable) as info, _reading_sources(db, MODEL):
        raise UndefinedTable('relation "public.late" does not exist', hint="h")
    assert info.value.detail and "hot standby" in info.value.detail
    db, _, _ = reading(reader=False)
    with pytest.raises(UndefinedTable) as info, _reading_sources(db, MODEL):
        raise UndefinedTable('relation "public.late" does not exist', hint="h")
    assert info.value.detail is None
