"""Reading interactions in the server: shipping raw rows (numpy sums the pairs) gives exactly
the matrix that aggregating in SQL (GROUP BY ... HAVING) gives."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

Conn = psycopg.Connection[Any]

# runs inside the server: loads one model both ways (with_times=True takes the GROUP BY path)
COMPARE = """
DO LANGUAGE plpython3u $$
import json
import numpy as np
from pyrec_pg.entrypoints import server
from pyrec_pg.catalog import models
from pyrec_pg.store import interactions
plpy.execute("SELECT pyrec._python()")
db = server._db(plpy)
model = models.get_model(db, "reads")
options = json.loads(%(options)s)
interactions.CHUNK_ROWS = %(chunk)s
chunks = []
calls = []  # the steps a patch saw taken
read_chunks = interactions._chunks
def counted(*args):
    for chunk in read_chunks(*args):
        chunks.append(int(chunk["n"]))
        yield chunk
interactions._chunks = counted
%(patch)s
raw = interactions.load(db, model, options, False)
grouped = interactions.load(db, model, options, True)
a, b = raw.matrix, grouped.matrix
problems = [
    name for name, ok in [
        ("users", list(raw.users) == list(grouped.users)),
        ("items", list(raw.items) == list(grouped.items)),
        ("shape", a.shape == b.shape),
        ("structure", np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)),
        ("weights", a.shape == b.shape and np.allclose(a.toarray(), b.toarray())),
        ("rows_read", raw.rows_read == grouped.rows_read),
        ("distinct_items", np.array_equal(raw.distinct_items, grouped.distinct_items)),
        # grouped in SQL after a collision, the raw read has the times too
        ("times", (raw.times is None or calls == ["collision"]) and grouped.times.nnz == b.nnz),
    ] if not ok
]
if problems:
    plpy.error("raw and grouped reads differ in %%s: %%s vs %%s" %% (
        problems, (list(raw.users), list(raw.items), a.toarray().tolist(), raw.rows_read),
        (list(grouped.users), list(grouped.items), b.toarray().tolist(), grouped.rows_read)))
plpy.notice(json.dumps(
    {"shape": list(a.shape), "nnz": int(a.nnz), "rows": raw.rows_read, "chunks": chunks,
     "calls": calls}))
$$
"""


def _table(conn: Conn, id_type: str) -> None:
    conn.execute(f"CREATE TABLE ev (u {id_type}, i {id_type}, kind text, ts timestamptz)")
    # ids out of numeric order as text (10 < 9), a sparse id, duplicates, NULLs, and pairs whose
    # weights cancel out (user 4 and item 77 then have nothing left)
    conn.execute(
        """INSERT INTO ev VALUES
           (10, 1, 'view', now()), (10, 1, 'view', now()), (10, 2, 'buy', now()),
           (9, 2, 'view', now()), (9, 30000, 'view', now()), (9, 30000, 'skip', now()),
           (4, 77, 'skip', now()), (4, 77, 'view', now()), (2, 1, 'buy', now()),
           (NULL, 1, 'view', now()), (2, NULL, 'view', now()), (2, 2, 'skip', now())"""
    )
    conn.execute(
        "SELECT pyrec.create_model('reads', interactions => 'ev',"
        ' options => \'{"columns": {"user": "u", "item": "i", "event_type": "kind",'
        ' "timestamp": "ts"}}\')'
    )


@pytest.mark.pg
@pytest.mark.parametrize("id_type", ["smallint", "integer", "bigint", "text", "varchar(12)"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"event_weights": {"view": 1, "buy": 5, "skip": -1}},
        {"event_types": ["view", "BUY"]},
        {"event_weights": {"skip": -10}},
    ],
)
def test_raw_rows_sum_to_the_grouped_matrix(
    dsn: str, id_type: str, options: dict[str, Any]
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _table(conn, id_type)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute(
            COMPARE
            % {"options": psycopg.sql.quote(json.dumps(options)), "chunk": 1_000_000, "patch": ""}
        )
    summary = json.loads(notices[-1])
    assert summary["nnz"] > 0
    assert len(summary["chunks"]) == 1
    if options == {"event_weights": {"view": 1, "buy": 5, "skip": -1}}:
        # (9, 30000), (4, 77) and (2, 2) cancel out: users 10, 9, 2 and items 1, 2 remain,
        # in 4 pairs from 5 rows
        assert summary == {"shape": [3, 2], "nnz": 4, "rows": 5, "chunks": [10], "calls": []}


# a fixed order that scatters the real rows among the NULL-user ones
SCATTER = "md5(concat(u, ':', i, ':', kind))"
LAYOUTS = {
    # NULL-user rows between the real ones (never read) spread them over many blocks
    "blocks": f"CREATE TABLE ev AS SELECT * FROM ev_rows ORDER BY {SCATTER}",
    "partitions": "CREATE TABLE ev (LIKE ev_rows) PARTITION BY HASH (i);"
    " CREATE TABLE ev_0 PARTITION OF ev FOR VALUES WITH (MODULUS 3, REMAINDER 0);"
    " CREATE TABLE ev_1 PARTITION OF ev FOR VALUES WITH (MODULUS 3, REMAINDER 1);"
    " CREATE TABLE ev_2 PARTITION OF ev FOR VALUES WITH (MODULUS 3, REMAINDER 2);"
    f" INSERT INTO ev SELECT * FROM ev_rows ORDER BY {SCATTER}",
    "inheritance": "CREATE TABLE ev (LIKE ev_rows); CREATE TABLE ev_old () INHERITS (ev);"
    " INSERT INTO ev_old SELECT * FROM ev_rows WHERE ts < now() - interval '1 day'"
    f" ORDER BY {SCATTER};"
    " INSERT INTO ev SELECT * FROM ev_rows WHERE ts >= now() - interval '1 day'",
    "view": "CREATE VIEW ev AS SELECT * FROM ev_rows",
}


@pytest.mark.pg
@pytest.mark.parametrize("id_type", ["bigint", "text"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("options", [{}, {"event_weights": {"view": 1, "buy": 5, "skip": -1}}])
def test_reading_in_chunks_of_blocks_gives_the_grouped_matrix(
    dsn: str, id_type: str, layout: str, options: dict[str, Any]
) -> None:
    """Rows read a few blocks at a time (a chunk of at most 2 rows' worth of blocks), from
    partitions, inherited tables and views, sum to what one GROUP BY gives."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _table(conn, id_type)
        conn.execute("ALTER TABLE ev RENAME TO ev_rows")
        conn.execute(
            "INSERT INTO ev_rows SELECT NULL, g, 'view', now() - interval '2 days'"
            " FROM generate_series(1, 5000) g"
        )
        conn.execute("UPDATE ev_rows SET ts = now() - interval '3 days' WHERE u IN ('9', '4')")
        for statement in LAYOUTS[layout].split(";"):
            conn.execute(statement)
        conn.execute("ANALYZE")
        conn.execute("SELECT pyrec.drop_model('reads')")
        conn.execute(
            "SELECT pyrec.create_model('reads', interactions => 'ev',"
            ' options => \'{"columns": {"user": "u", "item": "i",'
            ' "event_type": "kind", "timestamp": "ts"}}\')'
        )
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute(
            COMPARE % {"options": psycopg.sql.quote(json.dumps(options)), "chunk": 2, "patch": ""}
        )
    summary = json.loads(notices[-1])
    want = {"shape": [3, 2], "nnz": 4, "rows": 5} if options else {"shape": [4, 4], "nnz": 7}
    assert {k: summary[k] for k in want} == want
    # a view has no blocks: one chunk; tables are read a few blocks at a time
    assert len(summary["chunks"]) == 1 if layout == "view" else len(summary["chunks"]) > 2
    assert sum(summary["chunks"]) == 10  # the 12 rows less the 2 with a NULL id


# run in the server before the raw read: what happens between the scan and reading the texts
PATCHES = {
    # every row gets a new ctid (the same values) after the scan: the rows the ids were first
    # seen in are gone, so the ids are listed by a GROUP BY instead
    "moved": """
texts_of, listed = interactions._texts_of, interactions._hashed_ids
def moved(db, *args):
    plpy.execute("UPDATE ev SET kind = kind")
    found = texts_of(db, *args)
    calls.append("texts" if found is not None else "moved")
    return found
def listing(*args):
    calls.append("listed")
    return listed(*args)
interactions._texts_of, interactions._hashed_ids = moved, listing
""",
    # two ids sharing a hash: the rows are grouped in SQL instead
    "collision": """
def collide(self, checks):
    calls.append("collision")
    return True
interactions.Seen.shared = collide
""",
    "as is": """
texts_of = interactions._texts_of
def texts(*args):
    found = texts_of(*args)
    calls.append("texts" if found is not None else "moved")
    return found
interactions._texts_of = texts
""",
}


@pytest.mark.pg
@pytest.mark.parametrize("case", sorted(PATCHES))
@pytest.mark.parametrize("chunk", [2, 1_000_000])
def test_text_ids_read_from_their_first_rows_or_listed_give_the_grouped_matrix(
    dsn: str, case: str, chunk: int
) -> None:
    """Text ids: the texts read from the rows each id was first seen in, or (those rows
    changed since the scan) listed by a GROUP BY, or (a hash collision) grouped in SQL, all
    give what one GROUP BY gives."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _table(conn, "text")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute(
            COMPARE % {"options": psycopg.sql.quote("{}"), "chunk": chunk, "patch": PATCHES[case]}
        )
    summary = json.loads(notices[-1])
    assert {k: summary[k] for k in ("shape", "nnz", "rows")} == {
        "shape": [4, 4],
        "nnz": 7,
        "rows": 10,
    }
    want = {
        "as is": ["texts", "texts"],
        "moved": ["moved", "listed", "moved", "listed"],
        "collision": ["collision"],
    }
    assert summary["calls"] == want[case]


@pytest.mark.pg
def test_a_row_that_fails_in_the_middle_of_the_reading_fails_the_training_with_its_error(
    dsn: str,
) -> None:
    """An error raised while the chunks are read (a value out of float8's range) reaches the
    caller as itself and the run is recorded as failed: the chunks' cursor is closed before
    the procedure rolls back (a procedure cannot roll back with a failed cursor open)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        # numeric holds 1e400; the weight's cast to float8 overflows on that row alone
        conn.execute("CREATE TABLE ev (u int, i int, v numeric)")
        conn.execute(
            "INSERT INTO ev SELECT g % 7, g % 5, CASE WHEN g = 2500 THEN 1e400 ELSE 1 END"
            " FROM generate_series(1, 4000) g"
        )
        conn.execute("ANALYZE ev")
        conn.execute(
            "SELECT pyrec.create_model('bad', 'ev', options => '{\"holdout\": 0,"
            ' "use_event_value": true, "columns": {"user": "u", "item": "i",'
            ' "event_value": "v"}}\')'
        )
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("CALL pyrec.train('bad')")
        assert caught.value.sqlstate == "22003", caught.value
        assert "out of range" in str(caught.value)
        run = conn.execute(
            "SELECT status FROM pyrec.training_runs WHERE model = 'bad' ORDER BY run_id DESC"
        ).fetchone()
        assert run == ("failed",)
        assert conn.execute("SELECT 1").fetchone() == (1,)
