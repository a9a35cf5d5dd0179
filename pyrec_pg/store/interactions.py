"""Reading a model's interactions from the user's own table into a sparse user-item matrix."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.catalog.models import Model, check_sources
from pyrec_pg.db import Db
from pyrec_pg.db.types import EPOCH_TYPES, INTEGER_TYPES
from pyrec_pg.errors import InsufficientData
from pyrec_pg.ml.interactions import Interactions, times_matrix
from pyrec_pg.ml.memory import release

# one aggregated (user, item) pair on the wire: codes as int4, weight and last time as float8
PAIR = np.dtype([("u", ">i4"), ("i", ">i4"), ("w", ">f8"), ("t", ">f8")])
ONE = "1.0::float8"  # the weight of every interaction when no option weighs them
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def _epoch(db: Db, model: Model) -> str | None:
    ts = model.columns.get("timestamp")
    if ts is None:
        return None
    col = db.ident(ts)
    if str(model.columns.get("timestamp_type", "")) in EPOCH_TYPES:
        return f"{col}::float8"
    # date_part is float8 already; extract() builds a numeric per row (about 2x slower here)
    return f"date_part('epoch', {col})"


def weight_sql(
    db: Db, model: Model, options: dict[str, Any], consts: str = "$1", newest: str = "$2"
) -> str:
    """SQL for one interaction's weight. `consts` is a jsonb of event weights and `newest` the
    newest epoch: parameters ($1 and $2), or their literals."""
    parts = []
    et = model.columns.get("event_type")
    if options.get("event_weights") and et is not None:
        parts.append(f"coalesce(({consts}::jsonb ->> {db.ident(et)}::text)::float8, 1.0)")
    ev = model.columns.get("event_value")
    if options.get("use_event_value") and ev is not None:
        parts.append(f"greatest({db.ident(ev)}::float8, 0)")
    epoch = _epoch(db, model)
    half_life = options.get("recency_half_life_days")
    if half_life and epoch is not None:
        # capped: 0.5^1000 is ~1e-301, still a float8 (older events would underflow)
        age = f"({newest} - {epoch}) / {float(half_life) * 86400.0!r}"
        parts.append(f"power(0.5, least({age}, 1000.0))")
    return " * ".join(parts) or ONE


def where_sql(
    db: Db, model: Model, options: dict[str, Any], consts: str = "$1", newest: str = "$2"
) -> str:
    """SQL for the rows a training reads. `consts` and `newest` are where the jsonb of event
    weights and types and the newest epoch come from: parameters, or their literals."""
    cols = model.columns
    conds = [f"{db.ident(cols['user'])} IS NOT NULL", f"{db.ident(cols['item'])} IS NOT NULL"]
    et = cols.get("event_type")
    if options.get("event_types") and et is not None:
        conds.append(
            f"lower({db.ident(et)}::text) = ANY (SELECT lower(x) FROM"
            f" jsonb_array_elements_text({consts}::jsonb -> '__types') x)"
        )
    epoch = _epoch(db, model)
    if options.get("window_days") and epoch is not None:
        conds.append(f"{epoch} >= {newest} - {float(options['window_days']) * 86400.0!r}")
    threshold = options.get("event_value_threshold")
    ev = cols.get("event_value")
    least = None
    # events valued under the threshold are ignored (Personalize's eventValueThreshold); an
    # event without a value is not under it. Per type: the types not listed keep every event
    if isinstance(threshold, dict) and et is not None:
        cases = " ".join(
            f"WHEN {db.literal(str(t).lower())} THEN {float(v)!r}::float8"
            for t, v in threshold.items()
        )
        least = f"CASE lower({db.ident(et)}::text) {cases} END"
    elif isinstance(threshold, int | float):
        least = f"{float(threshold)!r}::float8"
    if least is not None and ev is not None:
        value = f"{db.ident(ev)}::float8"
        conds.append(f"({value} IS NULL OR {least} IS NULL OR {value} >= {least})")
    return " AND ".join(conds)


def not_forgotten(db: Db, model: Model, user: str) -> str:
    """' AND <user> is not forgotten' (pyrec.forget_user) for a query over `user`, an SQL
    expression of the model's user ids; '' when the model has forgotten no one. One hashed
    pass over pyrec._forgotten, not a lookup per row."""
    if not db.scalar(
        "SELECT EXISTS (SELECT 1 FROM pyrec._forgotten WHERE model_id = $1)",
        [model.model_id],
        ["int4"],
    ):
        return ""
    return (
        f" AND {user}::text NOT IN (SELECT f.user_id FROM pyrec._forgotten f"
        f" WHERE f.model_id = {int(model.model_id)})"
    )


def load(
    db: Db, model: Model, options: dict[str, Any] | None = None, with_times: bool = True
) -> Interactions:
    """Aggregate the interactions by (user, item) in SQL and ship them packed in bytea."""
    check_sources(db, model)
    options = model.options if options is None else options
    cols = model.columns
    user, item = db.ident(cols["user"]), db.ident(cols["item"])
    epoch = _epoch(db, model) or "0::float8"
    weight, where = weight_sql(db, model, options), where_sql(db, model, options)
    aggs, having = _aggregates(weight)
    last = f"max({epoch})" if with_times else "0::float8"
    forgotten = not_forgotten(db, model, user)
    where += forgotten
    source = f"{model.interactions} WHERE {where}"
    grouped = f"SELECT {user} AS u, {item} AS i, {aggs}, {last} AS t FROM {source} GROUP BY 1, 2"
    consts_json, newest = _constants(db, model, options)
    args = [consts_json, newest]
    integer_ids = cols.get("user_type") in INTEGER_TYPES and cols.get("item_type") in INTEGER_TYPES
    coded = None
    if not with_times:
        # no GROUP BY: the rows ship as they are and numpy sums the pairs (the hash
        # aggregate was ~80% of reading at 10M rows); ids of other types ship as 64-bit
        # hashes of their text, the same speed (None on a hash collision: then by SQL).
        # The test with its values written in: a query without parameters may run in
        # parallel workers (plpy's prepared plans never do)
        literal = where_sql(
            db, model, options, f"{db.literal(consts_json)}::jsonb", f"{newest!r}::float8"
        )
        rows = Rows(where, literal + forgotten, None if weight == ONE else weight, args)
        coded = _load_rows(db, model, rows)
    if coded is None and (with_times or not integer_ids):
        # training is maintenance work: hash the pairs in memory up to maintenance_work_mem
        # (an error aborts the transaction, which undoes the local setting too)
        work_mem = db.scalar("SELECT current_setting('work_mem')")
        db.run(
            "SELECT set_config('work_mem', greatest(pg_size_bytes(current_setting('work_mem')),"
            " pg_size_bytes(current_setting('maintenance_work_mem'))) / 1024 || 'kB', true)"
        )
        if integer_ids:
            coded = _load_integer_ids(db, grouped + having, args)
        else:
            coded = _load_any_ids(db, grouped + having, args)
        db.run("SELECT set_config('work_mem', $1, true)", [work_mem], ["text"])
    if coded is None:
        raise InsufficientData(
            f"{model.interactions} has no usable interactions",
            hint="training needs rows with a non-NULL user and item (and a positive event weight)",
        )
    user_ids, item_ids, matrix, times, rows_read = coded
    release()  # what reading freed goes back to the OS before the fit allocates
    users = np.asarray(user_ids, dtype=str)
    distinct = np.diff(matrix.indptr).astype(np.int32)
    if _leaves_out(options):
        distinct = distinct_items(db, model, users)
    return Interactions(
        users=users,
        items=np.asarray(item_ids, dtype=str),
        matrix=matrix,
        rows_read=rows_read,
        times=times,
        newest=newest,
        distinct_items=distinct,
    )


def _constants(db: Db, model: Model, options: dict[str, Any]) -> tuple[str, float]:
    """The reading's constants: the jsonb of event weights and types, and the newest epoch
    that recency weights and windows count from (0 without them)."""
    consts = dict(options.get("event_weights") or {})
    consts["__types"] = list(options.get("event_types") or [])
    epoch = _epoch(db, model)
    newest = 0.0
    if epoch is not None and (options.get("recency_half_life_days") or options.get("window_days")):
        newest = float(db.scalar(f"SELECT max({epoch}) FROM {model.interactions}") or 0.0)
    return json.dumps(consts), newest


def _aggregates(weight: str) -> tuple[str, str]:
    """A pair's weight (w) and rows read (n), and the HAVING that drops pairs weighing
    nothing. Unweighted (the default), one aggregate, count(*), is both."""
    if weight == ONE:
        return "count(*)::float8 AS w, count(*) AS n", ""
    return f"sum({weight}) AS w, count(*) AS n", f" HAVING sum({weight}) > 0"


def _leaves_out(options: dict[str, Any]) -> bool:
    """Whether options weigh or leave out events, so that a user's pairs in the matrix are
    not their distinct items (which serving counts to notice new history)."""
    keys = ("event_types", "window_days", "event_weights", "use_event_value")
    return any(options.get(k) for k in keys)


@dataclass(frozen=True)
class PairsSql:
    """A model's aggregated pairs as SQL without parameters, for another engine to run (Spark
    through JDBC): `pairs` has columns u and i (the ids as text), w (the summed weight), n
    (the rows read) and t (the last event's epoch, 0 unless asked for); `distinct`, when
    options leave events out, has u and d (the user's distinct items over all rows)."""

    pairs: str
    distinct: str | None
    newest: float


def pairs_sql(db: Db, model: Model, options: dict[str, Any], with_times: bool) -> PairsSql:
    """The SQL `load` runs, with its constants written in."""
    check_sources(db, model)
    cols = model.columns
    user, item = db.ident(cols["user"]), db.ident(cols["item"])
    consts_json, newest = _constants(db, model, options)
    consts, at = f"{db.literal(consts_json)}::jsonb", f"{newest!r}::float8"
    weight = weight_sql(db, model, options, consts, at)
    where = where_sql(db, model, options, consts, at) + not_forgotten(db, model, user)
    aggs, having = _aggregates(weight)
    last = f"max({_epoch(db, model) or '0::float8'})" if with_times else "0::float8"
    # grouped by the columns, not their text: integers group faster
    pairs = (
        f"SELECT {user}::text AS u, {item}::text AS i, {aggs}, {last} AS t"
        f" FROM {model.interactions} WHERE {where} GROUP BY {user}, {item}{having}"
    )
    distinct = None
    if _leaves_out(options):
        distinct = (
            f"SELECT {user}::text AS u, count(DISTINCT {item}::text) AS d"
            f" FROM {model.interactions} WHERE {user} IS NOT NULL AND {item} IS NOT NULL"
            f" GROUP BY {user}"
        )
    return PairsSql(pairs, distinct, newest)


# (user ids, item ids, summed weights, last event times, rows read)
Coded = tuple[list[str], list[str], sp.csr_matrix, sp.csr_matrix | None, int]
CHUNK_ROWS = 1_000_000  # rows per chunk read: bounds reading's memory in the server and here


def _matrices(
    users: list[str], items: list[str], u: Ints, i: Ints, w: Floats, t: Floats
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    shape = (len(users), len(items))
    times = times_matrix(t, u, i, shape)
    # weights in float32, as the rows path and the recipes' solvers keep them
    return sp.csr_matrix((w.astype(np.float32), (u, i)), shape=shape), times


@dataclass(frozen=True)
class Rows:
    """The rows a training reads: their test (with parameters $1 and $2 = `args`, and with
    the values written in), and each row's weight (None: all are 1)."""

    where: str
    where_literal: str
    weight: str | None
    args: list[Any]


def _load_rows(db: Db, model: Model, rows: Rows) -> Coded | None:
    """No event times needed: every row ships as it is (its ids, and its weight unless all
    are 1), in chunks of about CHUNK_ROWS, each coded at once; numpy sums the pairs into the
    matrix, and pairs whose weights sum to <= 0 go, as HAVING sum(weight) > 0 drops them in
    SQL. Integer ids ship natively; others as the 64-bit hash of their text (None if two ids
    share a hash: the caller then groups in SQL).

    Hashed ids of a table (one relation with blocks): each row also ships its ctid, and
    each chunk the sum of a second hash of its ids (another seed); a new hash gets the next
    code as it is first seen, and the texts are read after the scan from the rows where each
    was first seen (a TID scan of one row per id, sorted in text order), so no step lists
    the ids over all rows. Two ids that share a hash show as a sum of second hashes other
    than the rows' codes give (None). A row gone or changed by then: the ids are listed by
    a GROUP BY instead, as for views and trees of tables, where the list is read before the
    scan (None if two ids share a hash, or a row's hash is not listed).

    Memory: per row, the two codes (int32) and the weight (float64, only when weighted) while
    reading; then the matrix (float32 counts, or float64 weights). Nothing holds all the
    rows' raw bytes at once, in the server or here."""
    layout = _layout(db, model.interactions)
    # a row of one table is found again by its ctid; a tree of tables repeats ctids
    by_tid = layout.blocks and not layout.children
    send, hashed, seen = {}, {}, {}
    for key in ("user", "item"):
        col = db.ident(model.columns[key])
        typ = model.columns[f"{key}_type"]
        if typ in ("smallint", "integer"):
            send[key] = (f"int4send({col}::int4)", ">i4")
        elif typ in INTEGER_TYPES:
            send[key] = (f"int8send({col}::int8)", ">i8")
        else:
            send[key] = (f"int8send(hashtextextended({col}::text, 0))", ">i8")
            if by_tid:
                seen[key] = Seen()
                continue
            found = _hashed_ids(db, f"{model.interactions} WHERE {rows.where_literal}", col)
            if found is None:
                return None
            hashed[key] = found
    aggs = [f"string_agg({send[k][0]}, ''::bytea) AS {k}" for k in ("user", "item")]
    if seen:
        aggs.append("string_agg(tidsend(ctid), ''::bytea) AS tid")
        aggs += [
            f"sum(hashtextextended({db.ident(model.columns[k])}::text, 1)) AS {k}_check"
            for k in seen
        ]
    weight, args = rows.weight, rows.args
    if weight:
        # float8 as computed: recency weights reach 1e-301, under float4's range
        aggs.append(f"string_agg(float8send(coalesce({weight}, 0)), ''::bytea) AS w")
    # per key: for integer ids the raw values of each chunk (coded once all are seen), for
    # hashed ids each chunk's codes already (provisional ones, in the order first seen, for
    # ids whose texts are fetched after the scan)
    parts: dict[str, list[npt.NDArray[Any]]] = {"user": [], "item": [], "w": []}
    rows_read = 0
    # closed on every way out (an early return, an error), so no cursor outlives the reading:
    # a procedure's COMMIT or ROLLBACK cannot hold a failed one
    with closing(
        _chunks(db, model.interactions, layout, rows.where, ", ".join(aggs), args)
    ) as chunks:
        for chunk in chunks:
            rows_read += int(chunk["n"])
            tids = np.frombuffer(chunk["tid"], dtype=TID) if seen else None
            for key in ("user", "item"):
                raw = np.frombuffer(chunk[key], dtype=send[key][1])
                if key in seen:
                    assert tids is not None
                    check = int(chunk[f"{key}_check"])
                    parts[key].append(seen[key].codes(raw.astype(np.int64), tids, check))
                elif key in hashed:
                    codes = hashed[key].codes(raw.astype(np.int64))
                    if codes is None:
                        return None
                    parts[key].append(codes)
                else:  # native order: as small as the ids allow, until coded
                    parts[key].append(raw.astype(_narrowest(raw)))
            if weight:
                parts["w"].append(np.frombuffer(chunk["w"], dtype=">f8").astype(np.float64))
    if rows_read == 0:
        return None
    names: dict[str, list[str]] = {}
    for key in ("user", "item"):
        if key in seen:
            col = db.ident(model.columns[key])
            texts = _texts_of(db, model.interactions, col, seen[key])
            if texts is not None and seen[key].shared(texts[2]):
                return None  # two ids share a hash
            named = None if texts is None else texts[:2]
            if named is None:  # a row changed since the scan: list the ids instead
                listed = _hashed_ids(db, f"{model.interactions} WHERE {rows.where_literal}", col)
                coded = None if listed is None else listed.codes(seen[key].hashes)
                if listed is None or coded is None:
                    return None
                named = listed.ids, coded
            names[key], final = named
            for n, codes in enumerate(parts[key]):  # each chunk's old codes freed as it goes
                parts[key][n] = final[codes]
        elif key in hashed:
            names[key] = hashed[key].ids
        else:  # codes in the text order of the ids, as serving breaks ties
            distinct = _distinct_of(parts[key])
            names[key], rank = _text_order(db, distinct)
            code = _coder(distinct, rank.astype(np.int32))
            parts[key] = [code(raw) for raw in parts[key]]
    u, i = _joined(parts["user"]), _joined(parts["item"])
    shape = (len(names["user"]), len(names["item"]))
    values = _joined(parts["w"]) if weight else np.ones(u.size, dtype=np.float32)
    # duplicates (several rows of one pair) are summed on the way to CSR
    matrix = sp.coo_matrix((values, (u, i)), shape=shape).tocsr()
    del values
    if weight:  # negative event weights can cancel a pair out
        counts = sp.coo_matrix((np.ones(u.size, dtype=np.float32), (u, i)), shape=shape).tocsr()
        rows_read = int(counts.data[matrix.data > 0].sum())  # as sum(count(*)) over the kept
        del counts
        matrix.data[matrix.data <= 0] = 0.0
        matrix.eliminate_zeros()
    del u, i
    # ids left without a pair (their weights cancelled out; for listed ids, also ids listed
    # by the list's read only, from rows deleted in between) are dropped
    keep_u = np.diff(matrix.indptr) > 0
    keep_i = np.bincount(matrix.indices, minlength=shape[1]) > 0
    users, items = names["user"], names["item"]
    if not (keep_u.all() and keep_i.all()):
        matrix = sp.csr_matrix(matrix[keep_u][:, keep_i])
        if matrix.nnz == 0:
            return None
        users = [n for n, k in zip(users, keep_u.tolist(), strict=True) if k]
        items = [n for n, k in zip(items, keep_i.tolist(), strict=True) if k]
    return users, items, matrix, None, rows_read


def _joined(parts: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """One array of the chunks' arrays, emptying the list as it goes (no second copy)."""
    out = np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)
    parts.clear()
    return out


def _narrowest(raw: npt.NDArray[Any]) -> type[np.signedinteger[Any]]:
    """int32 when the ids fit (bigint keys usually do), else int64."""
    small = np.iinfo(np.int32)
    if raw.size == 0 or (raw.min() >= small.min and raw.max() <= small.max):
        return np.int32
    return np.int64


def _distinct_of(chunks: list[npt.NDArray[Any]]) -> Ints:
    """The sorted distinct values of all the chunks: a presence table over their range when
    it is dense (the usual serial keys), else the union of each chunk's distinct values."""
    lo, hi, total = _span(chunks)
    if hi - lo + 1 <= total + 1_000_000:
        present = np.zeros(hi - lo + 1, dtype=bool)
        for c in chunks:
            present[c.astype(np.int64) - lo] = True
        return np.flatnonzero(present).astype(np.int64) + lo
    return np.unique(np.concatenate([np.unique(c) for c in chunks]).astype(np.int64))


def _span(chunks: list[npt.NDArray[Any]]) -> tuple[int, int, int]:
    filled = [c for c in chunks if c.size]
    return (
        min(int(c.min()) for c in filled),
        max(int(c.max()) for c in filled),
        sum(c.size for c in filled),
    )


def _coder(distinct: Ints, rank: npt.NDArray[np.int32]) -> Callable[[Any], npt.NDArray[np.int32]]:
    """Raw ids -> their codes (`rank` of each distinct value): one lookup in a table over the
    ids' range when it is dense, else a binary search among the distinct values."""
    lo, hi = int(distinct[0]), int(distinct[-1])
    if hi - lo + 1 <= 4 * distinct.size + 1_000_000:
        table = np.full(hi - lo + 1, -1, dtype=np.int32)
        table[distinct - lo] = rank
        return lambda raw: table[raw.astype(np.int64) - lo]
    return lambda raw: rank[np.searchsorted(distinct, raw)]


@dataclass(frozen=True)
class Layout:
    """A relation's storage: whether it has blocks (a table, not a view), whether it heads
    a tree of tables (partitions, inheritance), its largest member's size in blocks, and
    its statistics' rows and blocks."""

    blocks: bool
    children: bool
    pages: int
    tuples: float
    relpages: float


def _layout(db: Db, relation: str) -> Layout:
    size = db.one(
        "WITH RECURSIVE tree(oid) AS (SELECT to_regclass($1)::oid UNION"
        " SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid)"
        " SELECT bool_or(c.relkind IN ('r', 'm', 't')) AS blocks, count(*) > 1 AS children,"
        " max(pg_catalog.pg_relation_size(c.oid)"
        "     / current_setting('block_size')::int8)::int8 AS pages,"
        " sum(greatest(c.reltuples, 0))::float8 AS tuples,"
        " sum(c.relpages)::float8 AS relpages"
        " FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.oid",
        [relation],
        ["text"],
    )
    if size is None:
        return Layout(False, False, 0, 0.0, 0.0)
    return Layout(
        bool(size["blocks"]),
        bool(size["children"]),
        int(size["pages"] or 0),
        float(size["tuples"] or 0),
        float(size["relpages"] or 0),
    )


def _chunks(
    db: Db, relation: str, layout: Layout, where: str, aggs: str, args: list[Any]
) -> Generator[Mapping[str, Any], None, None]:
    """`aggs` (aggregates over the rows of `relation` passing `where`) for chunks of about
    CHUNK_ROWS rows, each chunk a range of the relation's blocks (a TID range scan), all from
    one statement: one snapshot, but never more than a chunk in memory. A relation without
    blocks of its own (a view, a foreign table) is one chunk."""
    agg_sql = f"SELECT {aggs}, count(*) AS n FROM {relation} WHERE {where}"
    if not layout.blocks:
        row = db.one(agg_sql, args, ["jsonb", "float8"])
        if row is not None and row["n"]:
            yield row
        return
    pages = max(layout.pages, 1)
    per_page = layout.tuples / max(layout.relpages, 1.0) or 200.0
    step = max(1, int(CHUNK_ROWS / per_page))
    # the last range is open: rows added after the size was read are read too
    ranged = (
        f"{agg_sql} AND ctid >= format('(%s,0)', b.lo)::tid AND ctid < CASE WHEN"
        f" b.lo + $4 >= $3 THEN '(4294967295,0)'::tid ELSE format('(%s,0)', b.lo + $4)::tid END"
    )
    sql = (
        f"SELECT c.* FROM generate_series(0::int8, $3 - 1, $4) b(lo),"
        f" LATERAL ({ranged}) c WHERE c.n > 0"
    )
    plan = db.plpy.prepare(sql, ["jsonb", "float8", "int8", "int8"])
    cursor = db.plpy.cursor(plan, [*args, pages, step])
    try:
        while True:
            batch = cursor.fetch(1)
            if not batch:
                return
            yield batch[0]
    finally:
        cursor.close()


def _load_integer_ids(db: Db, grouped: str, args: list[Any]) -> Coded | None:
    """Integer ids with each pair's last event time (the time protocol): the pairs ship as
    columns of native ids, coded in numpy (no joins, no text keys in SQL)."""
    row = db.one(
        f"SELECT string_agg(int8send(p.u::int8), ''::bytea) AS u,"
        f" string_agg(int8send(p.i::int8), ''::bytea) AS i,"
        f" string_agg(float8send(p.w), ''::bytea) AS w,"
        f" string_agg(float8send(coalesce(p.t, 0)), ''::bytea) AS t, sum(p.n)::int8 AS n"
        f" FROM ({grouped}) p",
        args,
        ["jsonb", "float8"],
    )
    if row is None or not row["u"]:
        return None
    coded = []
    for key in ("u", "i"):
        distinct, codes = _distinct(np.frombuffer(bytes(row[key]), dtype=">i8").astype(np.int64))
        ids, rank = _text_order(db, distinct)
        coded.append((ids, rank[codes]))
    (users, u), (items, i) = coded
    w = np.frombuffer(bytes(row["w"]), dtype=">f8").astype(np.float64)
    t = np.frombuffer(bytes(row["t"]), dtype=">f8").astype(np.float64)
    return (users, items, *_matrices(users, items, u, i, w, t), int(row["n"]))


def _distinct(raw: Ints) -> tuple[Ints, Ints]:
    """np.unique(raw, return_inverse=True), in linear time when the ids are dense (the usual
    serial keys): a presence table over their range instead of a sort."""
    if raw.size == 0:
        return raw, raw
    lo, span = int(raw.min()), int(raw.max()) - int(raw.min()) + 1
    if span > 4 * raw.size + 1_000_000:
        distinct, codes = np.unique(raw, return_inverse=True)
        return distinct, codes.reshape(-1)
    offset = raw - lo
    present = np.zeros(span, dtype=bool)
    present[offset] = True
    index = np.cumsum(present, dtype=np.int64) - 1
    return np.flatnonzero(present).astype(np.int64) + lo, index[offset]


def _distinct_hashes(raw: Ints) -> Ints:
    """The distinct values of `raw`, in no particular order: numpy >= 2.3 finds them with a
    hash table (a million rows in about half the time of a sort); older numpy sorts."""
    try:
        return np.unique(raw, sorted=False)
    except TypeError:  # numpy < 2.3 has no `sorted`
        return np.unique(raw)


def _text_order(db: Db, distinct: Ints) -> tuple[list[str], Ints]:
    """(ids as text in the database's text order, each distinct value's position there):
    codes follow the order serving breaks ties by (ORDER BY item_id, a text column)."""
    row = db.one(
        "SELECT array_agg(x::text ORDER BY x::text) AS ids,"
        " array_agg((n - 1)::int4 ORDER BY x::text) AS pos"
        " FROM unnest($1::int8[]) WITH ORDINALITY t(x, n)",
        [distinct.tolist()],
        ["int8[]"],
    )
    assert row is not None
    rank = np.empty(distinct.size, dtype=np.int64)
    rank[np.asarray(row["pos"], dtype=np.int64)] = np.arange(distinct.size)
    return list(row["ids"]), rank


class HashIndex:
    """Where each of some 64-bit hashes sits in their array. Lookup: a table indexed by some
    of the hashes' bits (at least 8 slots per hash, up to 2^25), holding the position of the
    one hash in its slot, checked against the row's hash: two gathers and a compare per row
    (at 200k hashes ~3x faster than a sorted copy with a directory of its top bits, ~8x than
    a binary search). The hashes that share a slot are indexed the same way by other bits,
    and the few left after that by a binary search among them."""

    def __init__(self, hashes: Ints, shift: int = 0) -> None:
        n = hashes.size
        self.size, self.shift = n, shift
        self.mask = (1 << int(min(max(np.ceil(np.log2(max(n, 1) * 8)), 10), 25))) - 1
        slot = (hashes >> shift) & self.mask
        per_slot = np.bincount(slot, minlength=self.mask + 1)
        alone = per_slot[slot] == 1
        # n: no hash in the slot; n + 1: several (looked up among the crowded)
        self.table = np.full(self.mask + 1, n, dtype=np.int32)
        self.table[per_slot > 1] = n + 1
        positions = np.arange(n, dtype=np.int32)
        self.table[slot[alone]] = positions[alone]
        self.keys = np.concatenate([hashes, np.zeros(2, dtype=np.int64)])
        crowded, self.crowded_at = hashes[~alone], positions[~alone]
        self.crowd: HashIndex | None = None
        if shift == 0 and crowded.size > 64:
            self.crowd = HashIndex(crowded, 32)
        order = np.argsort(crowded, kind="stable")
        self.crowded, self.crowded_order = crowded[order], order

    def find(self, raw: Ints) -> npt.NDArray[np.int32]:
        """Each hash's position in the array indexed; -1 for a hash not there."""
        at = self.table[(raw >> self.shift) & self.mask]
        out = np.where(self.keys[at] == raw, at, -1).astype(np.int32)
        out[out >= self.size] = -1  # a hash equal to the empty slots' key
        crowd = at == self.size + 1
        if crowd.any():
            some = raw[crowd]
            if self.crowd is not None:
                inner = self.crowd.find(some)
            else:
                k = np.minimum(np.searchsorted(self.crowded, some), self.crowded.size - 1)
                inner = np.where(self.crowded[k] == some, self.crowded_order[k], -1)
            out[crowd] = np.where(inner >= 0, self.crowded_at[inner], -1)
        return out


class Hashed(HashIndex):
    """Ids shipped as 64-bit hashes of their text, resolved by the list of distinct ids: a
    row's code is its id's position in `ids` (text order)."""

    def __init__(self, ids: list[str], hashes: Ints) -> None:
        super().__init__(hashes)
        self.ids = ids
        self.unique = np.unique(hashes).size == hashes.size

    def codes(self, raw: Ints) -> npt.NDArray[np.int32] | None:
        """Each row's code; None if a hash is not listed (a row committed after the list
        was read)."""
        out = self.find(raw)
        return None if np.any(out < 0) else out


# a ctid as tidsend writes it: block number, then the line pointer's offset
TID = np.dtype([("block", ">u4"), ("offset", ">u2")])


class Seen:
    """Hashed ids coded as first seen (a new hash gets the next code), with the ctid of the
    row each was first seen in, how many rows hold each, and the sum of the rows' second
    hashes (of another seed), which tells whether two ids share a hash."""

    MERGE = 4  # indexes of the hashes new in later chunks kept apart, before one over all

    def __init__(self) -> None:
        self.hashes: Ints = np.empty(0, dtype=np.int64)
        self.tids = np.empty(0, dtype=TID)
        self.counts: Ints = np.empty(0, dtype=np.int64)
        self.checksum = 0
        # (index, code of its first hash): each chunk's new hashes get an index of their
        # own, so a chunk that brings a few does not rebuild the index of all
        self.indexes: list[tuple[HashIndex, int]] = []

    def find(self, raw: Ints) -> npt.NDArray[np.int32]:
        """Each hash's code; -1 for a hash not seen."""
        out = np.full(raw.size, -1, dtype=np.int32)
        for index, start in self.indexes:
            miss = np.flatnonzero(out < 0) if start else None
            if miss is not None and miss.size == 0:
                break
            some = raw if miss is None else raw[miss]
            at = index.find(some)
            at[at >= 0] += start
            if miss is None:
                out = at
            else:
                out[miss] = at
        return out

    def codes(self, raw: Ints, tids: npt.NDArray[Any], checksum: int) -> npt.NDArray[np.int32]:
        """The rows' codes, giving new ones to hashes not seen before; `checksum` is the sum
        of the rows' second hashes."""
        codes = self.find(raw)
        new = codes < 0
        if new.any():
            rows = np.flatnonzero(new)
            fresh = _distinct_hashes(raw[rows])
            index = HashIndex(fresh)  # codes the new rows, then serves later chunks' lookups
            inner = index.find(raw[rows])
            start = self.hashes.size
            codes[rows] = start + inner
            # the row each new hash was first seen in
            holder = np.full(fresh.size, raw.size, dtype=np.int64)
            np.minimum.at(holder, inner, rows)
            self.hashes = np.concatenate([self.hashes, fresh])
            self.tids = np.concatenate([self.tids, tids[holder]])
            self.counts = np.concatenate([self.counts, np.zeros(fresh.size, dtype=np.int64)])
            if len(self.indexes) < self.MERGE:
                self.indexes.append((index, start))
            else:
                self.indexes = [(HashIndex(self.hashes), 0)]
        self.counts += np.bincount(codes, minlength=self.hashes.size)
        self.checksum += checksum
        return codes

    def shared(self, checks: Ints) -> bool:
        """Whether two ids share a hash, given each id's second hash (by code): the rows'
        second hashes then do not sum to the ids' own, each counted once per row (sums
        modulo 2^64; two ids colliding in both hashes would go unseen)."""
        want = (self.counts.astype(np.uint64) * checks.view(np.uint64)).sum(dtype=np.uint64)
        return int(want) != self.checksum % 2**64


def _texts_of(
    db: Db, relation: str, col: str, seen: Seen
) -> tuple[list[str], npt.NDArray[np.int32], Ints] | None:
    """The texts of the ids seen, read from the rows where each was first seen, in text
    order, each id's code there and its second hash (both indexed by its code in `seen`);
    None if one of those rows no longer holds the id seen there (deleted, updated, or its
    slot reused)."""
    tids = [
        f"({b},{o})"
        for b, o in zip(seen.tids["block"].tolist(), seen.tids["offset"].tolist(), strict=True)
    ]
    # one sort (the window's); the aggregates take its rows in one order, which `o` names.
    # The array behind a subquery: given its length, the planner prices a TID per row read
    # at random and scans the whole table instead (with ~2% of its rows, 20x slower here)
    row = db.one(
        f"SELECT array_agg(r.t) AS ids, string_agg(int4send(r.o), ''::bytea) AS o,"
        f" string_agg(int8send(hashtextextended(r.t, 0)), ''::bytea) AS h,"
        f" string_agg(int8send(hashtextextended(r.t, 1)), ''::bytea) AS c"
        f" FROM (SELECT x.t, (row_number() OVER (ORDER BY x.t) - 1)::int4 AS o"
        f" FROM (SELECT {col}::text AS t FROM {relation}"
        f" WHERE ctid = ANY ((SELECT $1::tid[])::tid[]) AND {col} IS NOT NULL) x) r",
        [tids],
        ["tid[]"],
    )
    if row is None or not row["ids"] or len(row["ids"]) != seen.hashes.size:
        return None
    order = np.frombuffer(row["o"], dtype=">i4").astype(np.int64)
    at = seen.find(np.frombuffer(row["h"], dtype=">i8").astype(np.int64))
    if np.any(at < 0):
        return None
    rank = np.full(seen.hashes.size, -1, dtype=np.int32)
    rank[at] = order
    if np.any(rank < 0):  # two rows hold one id: another is missing
        return None
    ids = [""] * at.size
    for k, t in zip(order.tolist(), row["ids"], strict=True):
        ids[k] = t
    checks = np.empty(seen.hashes.size, dtype=np.int64)
    checks[at] = np.frombuffer(row["c"], dtype=">i8")
    return ids, rank, checks


def _hashed_ids(db: Db, source: str, col: str) -> Hashed | None:
    """The distinct ids of the rows read, in text order, with their 64-bit hashes; None when
    two ids share a hash. `source` has no parameters, so the scan may use parallel workers."""
    row = db.one(
        f"SELECT array_agg(d.t ORDER BY d.t) AS ids,"
        f" array_agg(hashtextextended(d.t, 0) ORDER BY d.t) AS h"
        f" FROM (SELECT {col}::text AS t FROM {source} GROUP BY 1) d"
    )
    if row is None or not row["ids"]:
        return None
    found = Hashed(list(row["ids"]), np.asarray(row["h"], dtype=np.int64))
    return found if found.unique else None


def _load_any_ids(db: Db, grouped: str, args: list[Any]) -> Coded | None:
    """Ids of any type: coded in SQL by their text (one packed row per pair)."""
    # ids stay in their own type while grouping (text keys cost more to hash and compare)
    sql = f"""
        WITH pairs AS ({grouped}),
        us AS (SELECT u, u::text AS ut, (row_number() OVER (ORDER BY u::text) - 1)::int4 AS c
                 FROM (SELECT DISTINCT u FROM pairs) d),
        its AS (SELECT i, i::text AS it, (row_number() OVER (ORDER BY i::text) - 1)::int4 AS c
                  FROM (SELECT DISTINCT i FROM pairs) d)
        SELECT (SELECT array_agg(ut ORDER BY c) FROM us) AS users,
               (SELECT array_agg(it ORDER BY c) FROM its) AS items,
               (SELECT string_agg(int4send(us.c) || int4send(its.c) || float8send(p.w)
                                  || float8send(coalesce(p.t, 0)), ''::bytea)
                  FROM pairs p JOIN us USING (u) JOIN its USING (i)) AS packed,
               (SELECT sum(n) FROM pairs)::int8 AS n"""
    row = db.one(sql, args, ["jsonb", "float8"])
    if row is None or not row["users"]:
        return None
    pairs = np.frombuffer(bytes(row["packed"]), dtype=PAIR)
    users, items = list(row["users"]), list(row["items"])
    u, i = pairs["u"].astype(np.int64), pairs["i"].astype(np.int64)
    w, t = pairs["w"].astype(np.float64), pairs["t"].astype(np.float64)
    return (users, items, *_matrices(users, items, u, i, w, t), int(row["n"]))


def distinct_items(
    db: Db, model: Model, users: npt.NDArray[np.str_] | list[str]
) -> npt.NDArray[np.int32]:
    """Distinct non-NULL items of each user over all their rows (what recommend() counts)."""
    user, item = db.ident(model.columns["user"]), db.ident(model.columns["item"])
    packed = db.scalar(
        f"SELECT string_agg(int4send((b.n - 1)::int4) || int4send(c.n::int4), ''::bytea)"
        f" FROM (SELECT {user}::text AS u, count(DISTINCT {item}::text) AS n"
        f" FROM {model.interactions} WHERE {user} IS NOT NULL AND {item} IS NOT NULL"
        f" GROUP BY 1) c JOIN unnest($1::text[]) WITH ORDINALITY b(id, n) ON b.id = c.u",
        [list(users)],
        ["text[]"],
    )
    out = np.zeros(len(users), dtype=np.int32)
    if packed:
        rows = np.frombuffer(bytes(packed), dtype=[("pos", ">i4"), ("n", ">i4")])
        out[rows["pos"].astype(np.int64)] = rows["n"]
    return out
