"""`pyrec report`: the HTML page and its charts, checked against the catalog and in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pyrec_pg.analysis.report import write_report
from pyrec_pg.errors import FeatureNotSupported, InvalidParameter, NotReady, UndefinedObject

PIL = pytest.importorskip("PIL.Image", reason="Pillow comes with matplotlib (extra 'report')")

Conn = psycopg.Connection[Any]
FAST = {"factors": 16, "iterations": 4}
SAMPLE = 300  # users the report samples (of MovieLens' 943)


class Page(HTMLParser):
    """The parts of the report a test checks: headings, tables (cell text), images."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.title = ""
        self.headings: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self._tag: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_head = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("title", "h2"):
            self._tag = tag
            if tag == "h2":
                self.headings.append("")
        elif tag == "table":
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr" and self._table and not self._in_head:
            self.tables[self._table].append([])
        elif tag == "td":
            self._cell = []
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "h2"):
            self._tag = None
        elif tag == "td" and self._cell is not None and self._table:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._tag == "title":
            self.title += data
        elif self._tag == "h2":
            self.headings[-1] += data
        if self._cell is not None:
            self._cell.append(data + " ")


def _version_rows(conn: Conn, model: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT version, status, metrics, params, n_interactions FROM pyrec.model_versions"
        " WHERE model = %s ORDER BY version",
        [model],
    ).fetchall()


def _served_bias(conn: Conn, model: str, k: int, users: int) -> tuple[float, float, float]:
    """(share of slots on the top 1% items, their share of the ratings, catalog coverage),
    computed here in SQL from the ratings table and recommend() for the same users."""
    row = conn.execute(
        "WITH v AS (SELECT items_table, users_table FROM pyrec.model_versions"
        "           WHERE model = %(m)s AND status = 'active')"
        " SELECT format('SELECT item_id, popularity FROM pyrec.%%I', items_table),"
        "        format('SELECT user_id FROM pyrec.%%I', users_table) FROM v",
        {"m": model},
    ).fetchone()
    assert row is not None
    items_sql, users_sql = row
    top = conn.execute(
        f"WITH i AS ({items_sql}) SELECT array_agg(item_id) FROM (SELECT item_id FROM i"
        " ORDER BY popularity DESC, item_id LIMIT (SELECT ceil(count(*) * 0.01) FROM i)) t"
    ).fetchone()[0]  # type: ignore[index]
    served = conn.execute(
        f"SELECT avg((r.item_id = ANY(%s))::int)::float8, count(DISTINCT r.item_id)::float8"
        f" / (SELECT count(*) FROM ({items_sql}) i) FROM ({users_sql} ORDER BY md5(user_id)"
        f" LIMIT %s) u CROSS JOIN LATERAL pyrec.recommend(%s, u.user_id, %s) r",
        [top, users, model, k],
    ).fetchone()
    assert served is not None
    ratings = conn.execute(
        "SELECT avg((movie_id::text = ANY(%s))::int)::float8 FROM ratings", [top]
    ).fetchone()[0]  # type: ignore[index]
    return served[0], ratings, served[1]


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _check_images(page: Page, out: Path) -> None:
    for img in page.images:
        path = out / img["src"]
        assert path.parent == out and path.suffix == ".png", img
        with PIL.open(path) as im:
            assert im.format == "PNG"
            assert (im.width, im.height) == (int(img["width"]), int(img["height"]))
            im.verify()
        assert img["alt"]


def test_report_of_an_auto_model_over_two_versions(conn: Conn, tmp_path: Path) -> None:
    conn.execute(
        "SELECT pyrec.create_model('movies', 'ratings', items => 'movies', recipe => 'auto',"
        " options => %s)",
        [Jsonb({"params": {"candidates": [["als", FAST], ["popularity", {}]]}})],
    )
    conn.execute("CALL pyrec.train('movies')")
    wider = [["als", FAST], ["als", {"factors": 32, "iterations": 6}], ["popularity", {}]]
    conn.execute("CALL pyrec.train('movies', %s)", [Jsonb({"params": {"candidates": wider}})])
    out = tmp_path / "report"

    path = write_report(conn, "movies", out, k=10, sample_users=SAMPLE)

    assert path == out / "movies.html"
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert "movies" in page.title
    assert page.headings[:4] == [
        "Versions over time",
        "Metrics at k — active version v2",
        "Recipe comparison (auto, v2)",
        "Coverage and popularity bias",
    ]
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text

    versions = _version_rows(conn, "movies")
    assert [r[:2] for r in versions] == [(1, "inactive"), (2, "active")]
    table = page.tables["versions"]
    assert [row[:2] for row in table] == [["v1", "inactive"], ["v2", "active"]]
    for row, (_, _, metrics, params, n) in zip(table, versions, strict=True):
        assert row[3] == f"auto → {params['chosen']['recipe']}"
        assert row[4].startswith(f"{n:,}")
        assert row[6:10] == [f"{metrics[m]:.3f}" for m in ("ndcg@10", "precision@10")] + [
            f"{metrics[m]:.3f}" for m in ("recall@10", "map@10")
        ]
        assert row[10] == f"{metrics['baseline']['popularity']['ndcg@10']:.3f}"

    _, _, metrics, params, _ = versions[1]
    base = metrics["baseline"]["popularity"]
    cells = {row[0]: row[1:] for row in page.tables["metrics"]}
    assert list(cells) == ["precision", "recall", "ndcg", "map", "mrr", "coverage"]
    ks = [5, 10, 25]
    for key, value in metrics.items():
        if "@" not in key:
            continue
        name, k = key.split("@")
        cell = cells[name][ks.index(int(k))]
        assert cell.startswith(f"{value:.3f} popularity {base[key]:.3f}"), (key, cell)
        assert f"\u00d7{value / base[key]:.2f}" in cell

    trials = sorted(params["trials"], key=lambda t: -t["ndcg@10"])
    auto = page.tables["auto"]
    assert [row[0].split()[0] for row in auto] == [t["recipe"] for t in trials]
    assert len(trials) == 3
    for row, t in zip(auto, trials, strict=True):
        assert row[2:4] == [f"{t['ndcg@10']:.3f}", f"{t['precision@10']:.3f}"]
        won = {"recipe": t["recipe"], "params": t["params"]} == params["chosen"]
        assert ("chosen" in row[0]) == won, (row, params["chosen"])
    assert sorted(row[1] for row in auto) == [
        "defaults",
        "factors=16, iterations=4",
        "factors=32, iterations=6",
    ]

    recommended, interacted, coverage = _served_bias(conn, "movies", 10, SAMPLE)
    buckets = page.tables["bias"]
    assert buckets[0][:3] == ["top 1% 17 items", _pct(interacted), _pct(recommended)]  # 1,682/100
    assert [row[0] for row in buckets[1:]] == [
        "1-10% 152 items",
        "10-50% 672 items",
        "bottom 50% 841 items",
    ]
    shares = [float(row[2].rstrip("%")) for row in buckets]
    assert sum(shares) == pytest.approx(100, abs=0.3)
    assert recommended > interacted  # what every model on MovieLens does: it favours hits
    words = " ".join(re.sub(r"<[^>]+>", "", text).split())
    assert f"cover {_pct(coverage)} of the 1,682 items" in words
    most = page.tables["most-recommended"]
    titles = dict(conn.execute("SELECT movie_id::text, title FROM movies").fetchall())
    assert len(most) == 10 and all(int(r[1]) <= SAMPLE for r in most)
    for row in most:  # labelled from the items relation's title column
        item = row[0].rsplit(" id ", 1)[1]
        assert row[0] == f"{titles[item]} id {item}"

    assert [img["src"] for img in page.images] == [
        f"movies-{name}.png" for name in ("versions", "at-k", "auto", "bias")
    ]
    _check_images(page, out)
    _render_in_chromium(path, tmp_path, images=4)


def test_report_without_holdout_escapes_the_data(conn: Conn, tmp_path: Path) -> None:
    """Item ids are the user's text: the page shows them, never runs them."""
    hostile = ['<img src=x onerror="alert(1)">', "a&b", "</table><h2>x</h2>"]
    conn.execute("CREATE TABLE clicks (user_id text, item_id text)")
    conn.execute(
        "INSERT INTO clicks SELECT 'u' || u, (%s::text[])[1 + (u + i) %% 3]"
        " FROM generate_series(1, 40) u, generate_series(0, u %% 3) i",
        [hostile],
    )
    conn.execute(
        "SELECT pyrec.create_model('clicks', 'clicks', recipe => 'popularity',"
        " options => '{\"holdout\": 0}')"
    )
    conn.execute("CALL pyrec.train('clicks')")
    path = write_report(conn, "clicks", tmp_path, k=2, sample_users=50)
    text = path.read_text(encoding="utf-8")
    for item in hostile:
        assert item not in text
    page = Page(text)
    assert "Recipe comparison" in page.headings and "Metrics at k" in page.headings
    items = {row[0] for row in page.tables["most-recommended"]}
    assert items <= set(hostile) and items  # parsed back to the ids: escaped, not interpreted
    assert page.tables["versions"][0][6:10] == ["\u2013"] * 4  # en dash
    assert "trained without a holdout" in text and "with recipe <code>popularity</code>" in text
    assert [img["src"] for img in page.images] == ["clicks-versions.png", "clicks-bias.png"]
    _check_images(page, tmp_path)
    _render_in_chromium(path, tmp_path, images=2)


def test_report_errors_name_the_problem_and_write_nothing(
    conn: Conn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    with pytest.raises(UndefinedObject, match='model "nope" does not exist') as e:
        write_report(conn, "nope", out)
    assert e.value.hint and "pyrec.models" in e.value.hint and e.value.sqlstate == "42704"
    conn.execute("SELECT pyrec.create_model('fresh', 'ratings')")
    with pytest.raises(NotReady, match='model "fresh" has no trained version') as e2:
        write_report(conn, "fresh", out)
    assert e2.value.hint == "train it first: CALL pyrec.train('fresh')"
    with pytest.raises(InvalidParameter, match="k must be in") as e3:
        write_report(conn, "fresh", out, k=0)
    assert e3.value.hint
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(FeatureNotSupported, match="needs matplotlib") as e4:
        write_report(conn, "fresh", out)
    assert e4.value.hint and "pyrec_pg[report]" in e4.value.hint
    assert not out.exists()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/provision.sh)")
    return found


def _render_in_chromium(page: Path, tmp: Path, images: int) -> None:
    """Load the page headless: every image must load, and the screenshot must show a page."""
    base = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*base, f"--user-data-dir={tmp / 'chromium-dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f'data-images="{images}/{images}"' in dom, dom[:300]  # set by the page on load
    shot = tmp / "screenshot.png"
    subprocess.run(
        [
            *base,
            f"--user-data-dir={tmp / 'chromium-shot'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with PIL.open(shot) as im:
        assert im.size == (1280, 2000)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    top = max(n for n, _ in colours)
    # a blank or broken page is one or two colours; the report has charts and text
    assert len(colours) > 500 and top < 0.8 * 1280 * 2000, (len(colours), top)
    print(f"screenshot {shot}: {len(colours)} colours")
