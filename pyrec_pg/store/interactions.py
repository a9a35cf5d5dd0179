"""Reading a model's interactions from the user's own table into a sparse user-item matrix."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.catalog.models import Model, check_sources
from pyrec_pg.db import Db
from pyrec_pg.db.types import EPOCH_TYPES, INTEGER_TYPES
from pyrec_pg.errors import InsufficientData
from pyrec_pg.ml.interactions import Interactions

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


def weight_sql(db: Db, model: Model, options: dict[str, Any]) -> str:
    """SQL for one interaction's weight. $1 is a jsonb of event weights; $2 the newest epoch."""
    parts = []
    et = model.columns.get("event_type")
    if options.get("event_weights") and et is not None:
        parts.append(f"coalesce(($1::jsonb ->> {db.ident(et)}::text)::float8, 1.0)")
    ev = model.columns.get("event_value")
    if options.get("use_event_value") and ev is not None:
        parts.append(f"greatest({db.ident(ev)}::float8, 0)")
    epoch = _epoch(db, model)
    half_life = options.get("recency_half_life_days")
    if half_life and epoch is not None:
        # capped: 0.5^1000 is ~1e-301, still a float8 (older events would underflow)
        age = f"($2 - {epoch}) / {float(half_life) * 86400.0!r}"
        parts.append(f"power(0.5, least({age}, 1000.0))")
    return " * ".join(parts) or ONE


def where_sql(db: Db, model: Model, options: dict[str, Any]) -> str:
    cols = model.columns
    conds = [f"{db.ident(cols['user'])} IS NOT NULL", f"{db.ident(cols['item'])} IS NOT NULL"]
    et = cols.get("event_type")
    if options.get("event_types") and et is not None:
        conds.append(
            f"lower({db.ident(et)}::text) = ANY (SELECT lower(x) FROM"
            f" jsonb_array_elements_text($1::jsonb -> '__types') x)"
        )
    epoch = _epoch(db, model)
    if options.get("window_days") and epoch is not None:
        conds.append(f"{epoch} >= $2 - {float(options['window_days']) * 86400.0!r}")
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
    # unweighted (the default): one aggregate, count(*), is the weight and the rows read
    if weight == ONE:
        aggs, having = "count(*)::float8 AS w, count(*) AS n", ""
    else:
        aggs, having = f"sum({weight}) AS w, count(*) AS n", f" HAVING sum({weight}) > 0"
    last = f"max({epoch})" if with_times else "0::float8"
    if db.scalar(
        "SELECT EXISTS (SELECT 1 FROM pyrec._forgotten WHERE model_id = $1)",
        [model.model_id],
        ["int4"],
    ):  # users forgotten by pyrec.forget_user
        where += (
            f" AND {user}::text NOT IN (SELECT f.user_id FROM pyrec._forgotten f"
            f" WHERE f.model_id = {int(model.model_id)})"
        )
    source = f"{model.interactions} WHERE {where}"
    grouped = f"SELECT {user} AS u, {item} AS i, {aggs}, {last} AS t FROM {source} GROUP BY 1, 2"
    consts = dict(options.get("event_weights") or {})
    consts["__types"] = list(options.get("event_types") or [])
    newest = 0.0
    if epoch != "0::float8" and (
        options.get("recency_half_life_days") or options.get("window_days")
    ):
        newest = float(db.scalar(f"SELECT max({epoch}) FROM {model.interactions}") or 0.0)
    args = [json.dumps(consts), newest]
    integer_ids = cols.get("user_type") in INTEGER_TYPES and cols.get("item_type") in INTEGER_TYPES
    coded = None
    if not with_times:
        # no GROUP BY: the rows ship as they are and numpy sums the pairs (the hash
        # aggregate was ~80% of reading at 10M rows); ids of other types ship as 64-bit
        # hashes of their text, the same speed (None on a hash collision: then by SQL)
        coded = _load_rows(db, model, source, None if weight == ONE else weight, args)
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
    users = np.asarray(user_ids, dtype=str)
    distinct = np.diff(matrix.indptr).astype(np.int32)
    if any(
        options.get(k) for k in ("event_types", "window_days", "event_weights", "use_event_value")
    ):
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


# (user ids, item ids, summed weights, last event times, rows read)
Coded = tuple[list[str], list[str], sp.csr_matrix, sp.csr_matrix, int]


def _matrices(
    users: list[str], items: list[str], u: Ints, i: Ints, w: Floats, t: Floats
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    shape = (len(users), len(items))
    times = sp.csr_matrix((t + 1.0, (u, i)), shape=shape)
    times.data -= 1.0  # +1 above keeps epoch 0 from being dropped as an explicit zero
    return sp.csr_matrix((w, (u, i)), shape=shape), times


def _load_rows(
    db: Db, model: Model, source: str, weight: str | None, args: list[Any]
) -> Coded | None:
    """No event times needed: every row ships as it is (its ids, and its weight unless all
    are 1) and numpy sums the pairs; pairs whose weights sum to <= 0 go, as HAVING
    sum(weight) > 0 drops them in SQL. Integer ids ship natively; others as the 64-bit hash
    of their text, resolved by one list of the distinct ids (None if two ids share a hash)."""
    send = {}
    for key in ("user", "item"):
        col = db.ident(model.columns[key])
        typ = model.columns[f"{key}_type"]
        if typ in ("smallint", "integer"):
            send[key] = (f"int4send({col}::int4)", ">i4")
        elif typ in INTEGER_TYPES:
            send[key] = (f"int8send({col}::int8)", ">i8")
        else:
            send[key] = (f"int8send(hashtextextended({col}::text, 0))", ">i8")
    w = f"string_agg(float8send(coalesce({weight}, 0)), ''::bytea)" if weight else "NULL::bytea"
    row = db.one(
        f"SELECT string_agg({send['user'][0]}, ''::bytea) AS u,"
        f" string_agg({send['item'][0]}, ''::bytea) AS i, {w} AS w, count(*) AS n"
        f" FROM {source}",
        args,
        ["jsonb", "float8"],
    )
    if row is None or not row["u"]:
        return None
    # per key: its distinct values (integer ids; for hashed ids, their positions in the
    # text-ordered list of ids), each row's code among them, and that list (hashed ids)
    keys: list[tuple[Ints, Ints, list[str] | None]] = []
    for key, name in (("user", "u"), ("item", "i")):
        raw = np.frombuffer(row[name], dtype=send[key][1]).astype(np.int64)
        if model.columns[f"{key}_type"] in INTEGER_TYPES:
            keys.append((*_distinct(raw), None))
            continue
        found = _hashed_codes(db, source, db.ident(model.columns[key]), raw, args)
        if found is None:
            return None
        names, codes = found
        keys.append((np.arange(len(names), dtype=np.int64), codes, names))
    (du, u, user_names), (di, i, item_names) = keys
    values = np.ones(u.size) if row["w"] is None else np.frombuffer(row["w"], ">f8").astype(float)
    rows_read = int(row["n"])
    summed = sp.coo_matrix((values, (u, i)), shape=(du.size, di.size)).tocsr()
    if row["w"] is not None:  # negative event weights can cancel a pair out
        counts = sp.coo_matrix((np.ones(u.size), (u, i)), shape=summed.shape).tocsr()
        rows_read = int(counts.data[summed.data > 0].sum())  # as sum(count(*)) over the kept
        summed.data[summed.data <= 0] = 0.0
        summed.eliminate_zeros()
    # ids left without a pair (their weights cancelled out; for hashed ids, also ids listed
    # by the second read only, from rows committed in between) are dropped
    keep_u = np.diff(summed.indptr) > 0
    keep_i = np.bincount(summed.indices, minlength=di.size) > 0
    if not (keep_u.all() and keep_i.all()):
        kept = summed[keep_u][:, keep_i].tocoo()
        if kept.nnz == 0:
            return None
        du, di, values = du[keep_u], di[keep_i], kept.data
        u, i = kept.row.astype(np.int64), kept.col.astype(np.int64)
    ordered: list[tuple[list[str], Ints]] = []
    for distinct, listed in ((du, user_names), (di, item_names)):
        if listed is None:
            ordered.append(_text_order(db, distinct))
        else:  # positions in text order, still ascending: the order is kept
            ordered.append(([listed[k] for k in distinct.tolist()], np.arange(distinct.size)))
    (users, ru), (items, ri) = ordered
    # duplicates (several rows of one pair) are summed on the way to CSR
    matrix = sp.coo_matrix((values, (ru[u], ri[i])), shape=(du.size, di.size)).tocsr()
    times = sp.csr_matrix((np.zeros(matrix.nnz), matrix.indices, matrix.indptr), matrix.shape)
    return users, items, matrix, times, rows_read


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


def _hashed_codes(
    db: Db, source: str, col: str, raw: Ints, args: list[Any]
) -> tuple[list[str], Ints] | None:
    """Ids shipped as hashtextextended(id::text, 0), resolved by one list of the distinct ids
    of the rows read in text order with their hashes: (that list, each row's position in
    it). None when two ids share a hash, or a row's hash has no id (the rows changed between
    the two reads): the caller then codes the ids in SQL."""
    row = db.one(
        f"SELECT array_agg(d.t ORDER BY d.t) AS ids,"
        f" array_agg(hashtextextended(d.t, 0) ORDER BY d.t) AS h"
        f" FROM (SELECT DISTINCT {col}::text AS t FROM {source}) d",
        args,
        ["jsonb", "float8"],
    )
    if row is None or not row["ids"]:
        return None
    hashes = np.asarray(row["h"], dtype=np.int64)
    order = np.argsort(hashes, kind="stable")  # the few distinct ids are sorted, not the rows
    ranked = hashes[order]
    if np.any(ranked[1:] == ranked[:-1]):
        return None
    at = np.minimum(np.searchsorted(ranked, raw), ranked.size - 1)
    if not np.array_equal(ranked[at], raw):
        return None
    return list(row["ids"]), order[at].astype(np.int64)


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
