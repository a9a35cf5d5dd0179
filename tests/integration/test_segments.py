"""CALL pyrec.batch_users_for_items: segments for many items in one pass, replaced atomically."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.helpers import raises_pg

Conn = psycopg.Connection[Any]


def segments(
    conn: Conn, table: str = "pyrec.segments_movies"
) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for item, user, score, rank in conn.execute(
        f"SELECT item_id, user_id, score, rank FROM {table} ORDER BY item_id, rank"
    ):
        out.setdefault(item, []).append((user, score))
        assert rank == len(out[item])
    return out


def test_segments_for_a_query_of_items_match_users_for_item(trained: Conn) -> None:
    trained.execute(
        "CALL pyrec.batch_users_for_items('movies', items => 'SELECT movie_id FROM movies"
        " WHERE movie_id IN (1, 50, 181, 1500)', n => 20)"
    )
    got = segments(trained)
    assert set(got) == {"1", "50", "181", "1500"}
    for item, users in got.items():
        served = trained.execute(
            "SELECT user_id, score FROM pyrec.users_for_item('movies', %s, 20)", [item]
        ).fetchall()
        assert len(users) == len(served) == 20
        for (a, sa), (b, sb) in zip(served, users, strict=True):
            # same users, except where float32 sums in a different order swap near-ties
            assert a == b or abs(sa - sb) < 1e-4 * max(1.0, abs(sa)), (item, served, users)
            assert sa == pytest.approx(sb, rel=1e-4, abs=1e-5)
    # users who already rated the item are left out, read live from ratings
    seen = trained.execute(
        "SELECT count(*) FROM pyrec.segments_movies s JOIN ratings r"
        " ON r.viewer_id::text = s.user_id AND r.movie_id::text = s.item_id"
    ).fetchone()
    assert seen == (0,)
    job = trained.execute(
        "SELECT status, percent, rows_written, target FROM pyrec.batch_jobs"
        " ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert job == ("succeeded", 100.0, 80, "pyrec.segments_movies")


def test_segments_with_a_user_filter_and_every_item(trained: Conn) -> None:
    trained.execute(
        "CALL pyrec.batch_users_for_items('movies', n => 5, into_table => 'public.segs',"
        " filter => 'INCLUDE UserID WHERE Users.gender IN ($G)', params => '{\"G\": [\"F\"]}',"
        " exclude_seen => false)"
    )
    got = segments(trained, "public.segs")
    n_items = trained.execute(
        "SELECT n_items FROM pyrec.model_versions WHERE model = 'movies' AND status = 'active'"
    ).fetchone()
    assert n_items is not None and len(got) == n_items[0]
    assert all(len(users) == 5 for users in got.values())
    genders = trained.execute(
        "SELECT DISTINCT v.gender FROM public.segs s"
        " JOIN viewers v ON v.viewer_id::text = s.user_id"
    ).fetchall()
    assert genders == [("F",)]
    served = trained.execute(
        "SELECT user_id FROM pyrec.users_for_item('movies', '50', 5,"
        " 'INCLUDE UserID WHERE Users.gender IN (\"F\")', exclude_seen => false)"
    ).fetchall()
    assert [u for u, _ in got["50"]] == [u for (u,) in served]


def test_items_unknown_to_the_version_get_no_rows_and_are_counted(trained: Conn) -> None:
    notices: list[str] = []
    trained.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    trained.execute(
        "CALL pyrec.batch_users_for_items('movies', items => 'VALUES (1), (99999)', n => 3)"
    )
    assert set(segments(trained)) == {"1"}
    assert any("1 items are not in the version" in n for n in notices), notices


def test_a_second_run_replaces_the_first_and_drop_model_removes_it(trained: Conn) -> None:
    call = "CALL pyrec.batch_users_for_items('movies', items => 'SELECT %s', n => 2)"
    trained.execute(call % 1)
    trained.execute(call % 50)
    assert set(segments(trained)) == {"50"}
    trained.execute("SELECT pyrec.drop_model('movies')")
    assert trained.execute("SELECT to_regclass('pyrec.segments_movies')").fetchone() == (None,)


def test_segments_reject_bad_input_and_write_nothing(trained: Conn) -> None:
    call = "CALL pyrec.batch_users_for_items('movies', "
    with raises_pg(trained, "22023", "n must be between 1 and 1000", "users per item"):
        trained.execute(call + "n => 0)")
    with raises_pg(trained, "22004", "n must not be null"):
        trained.execute(call + "n => NULL)")
    with raises_pg(trained, "42704", 'items relation "nothing" does not exist', "query"):
        trained.execute(call + "items => 'nothing')")
    with raises_pg(trained, "22023", "items query failed", "item ids"):
        trained.execute(call + "items => 'SELECT 1; DROP TABLE movies')")
    with raises_pg(trained, "22023", "items returns 2 columns and none is named movie_id"):
        trained.execute(call + "items => 'SELECT 1, 2')")
    with raises_pg(trained, "22023", "filter selects items (ItemID)", "UserID filter"):
        trained.execute(call + "filter => 'INCLUDE ItemID WHERE Items.year > 1990')")
    with raises_pg(trained, "0A000", "does not support CurrentItem", "users_for_item"):
        trained.execute(call + "filter => 'INCLUDE UserID WHERE Users.age > CurrentItem.year')")
    trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 1)")
    with raises_pg(trained, "42P07", "was not written by pyrec.batch_users_for_items"):
        trained.execute(call + "into_table => 'pyrec.batch_movies')")
    trained.execute("SELECT pyrec.create_model('fresh', 'ratings')")
    with raises_pg(trained, "55000", 'model "fresh" has no trained version'):
        trained.execute("CALL pyrec.batch_users_for_items('fresh')")
    assert trained.execute("SELECT to_regclass('pyrec.segments_movies')").fetchone() == (None,)
    assert trained.execute("SELECT count(*) FROM movies").fetchone() == (1682,)
    left = trained.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_batch\\_%'")
    assert left.fetchone() == (0,)
