"""Filter cost: compile (cold, cached) and recommend() with a filter vs hand-written SQL.

The peer is the same top-10 query written by hand: the version's vector tables scanned with
the equivalent WHERE clause typed directly in SQL, in the same session.
Run: .venv/bin/python -m bench.bench_filters
"""

from __future__ import annotations

from typing import Any

import psycopg

from .common import median, movielens_server, row, timed

USER = "42"
REPEAT = 300
# name -> (filter expression, params, the same condition hand-written over movies m)
CASES: dict[str, tuple[str, str | None, str]] = {
    "personalize_items_in": (
        'EXCLUDE ItemID WHERE Items.genre IN ("Drama", "Comedy")',
        None,
        "NOT (m.genre && ARRAY['Drama', 'Comedy'])",
    ),
    "shorthand_two_conditions": (
        "genre = 'Comedy' AND year >= 1990",
        None,
        "'Comedy' = ANY (m.genre) AND m.year >= 1990",
    ),
    "personalize_params": (
        "INCLUDE ItemID WHERE Items.GENRE IN ($G) AND Items.YEAR >= $Y",
        '{"G": ["Horror", "Thriller"], "Y": 1990}',
        "m.genre && ARRAY['Horror', 'Thriller'] AND m.year >= 1990",
    ),
}


def query(conn: psycopg.Connection[Any], sql: str, args: list[Any]) -> None:
    conn.execute(sql, args).fetchall()


def compile_times(dsn: str, conn: psycopg.Connection[Any], model_id: int) -> None:
    print("compile time of pyrec._filter (cold: a fresh session; cached: the same session):")
    for name, (expr, _, _) in CASES.items():
        cold: list[float] = []
        for _ in range(15):
            with psycopg.connect(dsn, autocommit=True) as fresh:
                fresh.execute("SELECT pyrec._python()")  # importing pyrec_pg is not compiling
                cold += timed(
                    lambda f=fresh, e=expr: query(f, "SELECT pyrec._filter(%s, %s)", [model_id, e]),
                    1,
                )
        cached = timed(
            lambda e=expr: query(conn, "SELECT pyrec._filter(%s, %s)", [model_id, e]), REPEAT
        )
        print(row(f"{name}: cold", cold))
        print(row(f"{name}: cached", cached, median(cold)))


def latencies(conn: psycopg.Connection[Any], items: str, users: str) -> None:
    print("\nrecommend(user 42, 10), client round trip included:")
    recommend = "SELECT * FROM pyrec.recommend('movies', %s, 10, %s, %s)"
    base = timed(lambda: query(conn, recommend, [USER, None, None]), REPEAT)
    print(row("no filter", base))
    for name, (expr, params, hand) in CASES.items():
        conn.execute("SELECT pyrec.create_filter('movies', %s, %s)", [name, expr])
        peer_sql = (
            f"SELECT i.item_id, -(i.embedding <#> u.embedding) AS score"
            f" FROM pyrec.{items} i, pyrec.{users} u WHERE u.user_id = %s"
            f" AND i.item_id <> ALL (coalesce((SELECT array_agg(movie_id::text) FROM ratings"
            f" WHERE viewer_id = 42), '{{}}'))"
            f" AND i.item_id IN (SELECT m.movie_id::text FROM movies m WHERE {hand})"
            f" ORDER BY i.embedding <#> u.embedding LIMIT 10"
        )
        peer = timed(lambda s=peer_sql: query(conn, s, [USER]), REPEAT)
        adhoc = timed(lambda e=expr, p=params: query(conn, recommend, [USER, e, p]), REPEAT)
        named = timed(lambda n=name, p=params: query(conn, recommend, [USER, n, p]), REPEAT)
        print(f" {name}: {expr}")
        print(row("hand-written SQL (peer)", peer))
        print(row("recommend, ad-hoc expression (cached compile)", adhoc, median(peer)))
        print(row("recommend, named filter", named, median(peer)))
        print(row("filter's cost over recommend without filter", [median(adhoc) - median(base)]))


def main() -> None:
    with movielens_server() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT v.items_table, v.users_table, m.model_id FROM pyrec._versions v"
            " JOIN pyrec.models m USING (model_id) WHERE v.status = 'active'"
        ).fetchone()
        assert found is not None
        items, users, model_id = found
        compile_times(dsn, conn, model_id)
        latencies(conn, items, users)


if __name__ == "__main__":
    main()
