"""pyrec_pg.integrations.sqlalchemy against the real server: table-valued functions joined with
an app's ORM models give what the plain SQL calls give; the catalog classes match the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pyrec_pg.errors import FeatureNotSupported, PyrecError
from pyrec_pg.integrations import sqlalchemy as pyrec

Conn = psycopg.Connection[Any]


class App(DeclarativeBase):
    """The application's own models, over the MovieLens tables of the fixture database."""


class Movie(App):
    __tablename__ = "movies"

    movie_id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    year: Mapped[int | None]


class Viewer(App):
    __tablename__ = "viewers"

    viewer_id: Mapped[int] = mapped_column(primary_key=True)
    age: Mapped[int | None]


def engine_for(dsn: str) -> sa.Engine:
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))


@pytest.fixture
def engine(trained: Conn) -> Iterator[sa.Engine]:
    """An engine on a database with model "movies" trained (version 1)."""
    eng = engine_for(trained.info.dsn)
    yield eng
    eng.dispose()


def test_create_model_and_train_through_the_helpers(dsn: str) -> None:
    eng = engine_for(dsn)
    with Session(eng) as session:
        made = pyrec.create_model(
            session,
            "movies",
            "ratings",
            items="movies",
            options={"params": {"factors": 8, "iterations": 2}},
        )
        assert made["columns"]["user"] == "viewer_id" and made["items"] == "public.movies"
        session.commit()
        # train commits as it goes: on its own connection, even when given a session
        assert pyrec.train(session, "movies") == 1
        assert pyrec.train(eng, "movies", options={"holdout": 0}, mode="update") == 2
        versions = session.scalars(
            sa.select(pyrec.ModelVersion).order_by(pyrec.ModelVersion.version)
        ).all()
        assert [(v.version, v.status, v.mode) for v in versions] == [
            (1, "inactive", "full"),
            (2, "active", "update"),
        ]
        assert versions[0].metrics["ndcg@10"] > 0 and versions[1].metrics == {}
        model = session.scalars(sa.select(pyrec.Model)).one()
        assert model.active_version == 2 and [v.version for v in model.versions] == [1, 2]
        runs = session.scalars(sa.select(pyrec.TrainingRun.status)).all()
        assert runs == ["succeeded", "succeeded"]
    with eng.connect() as conn, pytest.raises(PyrecError) as info:
        pyrec.train(conn, "movies")  # not autocommit: the procedure could not commit
    assert info.value.sqlstate == "25001" and "AUTOCOMMIT" in (info.value.hint or "")
    eng.dispose()


def test_recommend_joins_the_apps_models_as_the_sql_does(engine: sa.Engine, trained: Conn) -> None:
    r = pyrec.recommend("movies", 42, 10)
    stmt = (
        sa.select(Movie.title, r.c.score, r.c.rank, r.c.source)
        .join(r, Movie.movie_id == r.c.item_id.cast(sa.Integer))
        .order_by(r.c.rank)
    )
    plain = trained.execute(
        "SELECT m.title, r.score, r.rank, r.source FROM pyrec.recommend('movies', '42', 10) r"
        " JOIN movies m ON m.movie_id = r.item_id::int ORDER BY r.rank"
    ).fetchall()
    with Session(engine) as session:
        got = [tuple(row) for row in session.execute(stmt)]
    assert got == plain and len(got) == 10
    assert all(isinstance(s, float) and isinstance(k, int) for _, s, k, _ in got)
    # omitted arguments keep the SQL defaults (k 10); given ones go by name
    assert "k =>" not in str(sa.select(pyrec.recommend("movies", "42")).compile(engine))


def test_filters_params_and_options_reach_the_function(engine: sa.Engine, trained: Conn) -> None:
    flt = "INCLUDE ItemID WHERE Items.year < $YEAR"
    with engine.connect() as conn:
        for year in (1960, 1980, 2000):  # one statement shape, cached once: values must vary
            r = pyrec.recommend("movies", "7", 5, filter=flt, params={"YEAR": year})
            got = conn.execute(sa.select(r.c.item_id, r.c.score)).all()
            plain = trained.execute(
                "SELECT item_id, score FROM pyrec.recommend('movies', '7', 5, filter => %s,"
                " params => %s)",
                [flt, f'{{"YEAR": {year}}}'],
            ).fetchall()
            assert [tuple(g) for g in got] == plain and len(plain) == 5
        seen = pyrec.recommend("movies", "7", 5, exclude_seen=False)
        plain = trained.execute(
            "SELECT item_id FROM pyrec.recommend('movies', '7', 5, exclude_seen => false)"
        ).fetchall()
        assert [tuple(g) for g in conn.execute(sa.select(seen.c.item_id))] == plain
        assert plain != trained.execute(
            "SELECT item_id FROM pyrec.recommend('movies', '7', 5)"
        ).fetchall()


def test_recommend_per_row_with_lateral(engine: sa.Engine, trained: Conn) -> None:
    r = pyrec.recommend("movies", Viewer.viewer_id, 3).lateral()
    stmt = (
        sa.select(Viewer.viewer_id, r.c.item_id, r.c.rank)
        .join(r, sa.true())
        .where(Viewer.viewer_id.in_([1, 2, 3, 5000]))
        .order_by(Viewer.viewer_id, r.c.rank)
    )
    with Session(engine) as session:
        got = [tuple(row) for row in session.execute(stmt)]
    plain = [
        (user, item, rank)
        for user in (1, 2, 3)
        for item, rank in trained.execute(
            "SELECT item_id, rank FROM pyrec.recommend('movies', %s, 3)", [str(user)]
        )
    ]
    assert got == plain and len(got) == 9  # there is no viewer 5000


def test_similar_rank_and_segments_equal_the_sql(engine: sa.Engine, trained: Conn) -> None:
    recent = "INCLUDE ItemID WHERE Items.year >= $Y"
    cases = [
        (pyrec.similar_items("movies", 50, 5), "pyrec.similar_items('movies', '50', 5)"),
        (
            pyrec.similar_items("movies", "50", 5, filter=recent, params={"Y": 1990}),
            f"pyrec.similar_items('movies', '50', 5, '{recent}', '{{\"Y\": 1990}}')",
        ),
        (
            pyrec.rank_items("movies", "42", [1, "50", "181", "nope"]),
            "pyrec.rank_items('movies', '42', ARRAY['1', '50', '181', 'nope'])",
        ),
        (pyrec.users_for_item("movies", 50, 7), "pyrec.users_for_item('movies', '50', 7)"),
        (
            pyrec.users_for_items("movies", "INCLUDE ItemID WHERE Items.year < 1950", 4),
            "pyrec.users_for_items('movies', 'INCLUDE ItemID WHERE Items.year < 1950', 4)",
        ),
        (
            pyrec.because_you_interacted("movies", 42, 4, anchors=2),
            "pyrec.because_you_interacted('movies', '42', 4, 2)",
        ),
        (
            pyrec.recommend_for_items("movies", [50, "181"], 5, exclude_items=["1"]),
            "pyrec.recommend_for_items('movies', ARRAY['50', '181'], 5,"
            " exclude_items => ARRAY['1'])",
        ),
        (
            pyrec.similar_items("movies", 50, 5, exclude_items=[181, "172"]),
            "pyrec.similar_items('movies', '50', 5, exclude_items => ARRAY['181', '172'])",
        ),
        (
            pyrec.recommend("movies", 42, 5, exclude_items=["98"]),
            "pyrec.recommend('movies', '42', 5, exclude_items => ARRAY['98'])",
        ),
    ]
    with engine.connect() as conn:
        for fn, sql in cases:
            got = [tuple(row) for row in conn.execute(sa.select(fn).order_by(fn.c.rank))]
            plain = trained.execute(f"SELECT * FROM {sql} ORDER BY rank").fetchall()
            assert got == plain and plain, sql
    # a segment joined with the app's users: their ages
    seg = pyrec.users_for_item("movies", 50, 5, name="seg")
    stmt = (
        sa.select(Viewer.age)
        .join(seg, Viewer.viewer_id == seg.c.user_id.cast(sa.Integer))
        .order_by(seg.c.rank)
    )
    with Session(engine) as session:
        ages = session.scalars(stmt).all()
    assert ages == [
        a
        for (a,) in trained.execute(
            "SELECT v.age FROM pyrec.users_for_item('movies', '50', 5) s"
            " JOIN viewers v ON v.viewer_id = s.user_id::int ORDER BY s.rank"
        )
    ]


def test_errors_are_the_servers(engine: sa.Engine) -> None:
    with engine.connect() as conn, pytest.raises(DBAPIError) as info:
        conn.execute(sa.select(pyrec.recommend("movies", "42", 0)))
    assert isinstance(info.value.orig, psycopg.Error)
    diag = info.value.orig.diag
    assert diag.sqlstate == "22023"
    assert "k must be between 1 and 10000" in (diag.message_primary or "")
    with engine.connect() as conn, pytest.raises(DBAPIError) as info:
        conn.execute(sa.select(pyrec.similar_items("nope", "1")))
    assert isinstance(info.value.orig, psycopg.Error) and info.value.orig.sqlstate == "42704"


def test_the_catalog_classes_match_the_catalog(engine: sa.Engine, trained: Conn) -> None:
    trained.execute(
        "SELECT pyrec.create_filter('movies', 'old', 'INCLUDE ItemID WHERE Items.year < 1970')"
    )
    trained.execute(
        "SELECT pyrec.create_experiment('home', '[{\"name\": \"a\", \"share\": 1},"
        " {\"name\": \"b\", \"share\": 1, \"serve\": \"popular\"}]', model => 'movies')"
    )
    trained.execute("SELECT * FROM pyrec.recommend(NULL, '1', 2, experiment => 'home')")
    trained.execute("CALL pyrec.batch_recommend('movies', users => 'SELECT 1', k => 2)")
    classes = [m.class_ for m in pyrec.Catalog.registry.mappers]
    assert len(classes) == 12
    with Session(engine) as session:
        for cls in classes:
            table = cls.__table__
            columns = trained.execute(
                "SELECT attname::text, replace(format_type(atttypid, atttypmod), 'name', 'text')"
                " FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped ORDER BY attnum",
                [f"pyrec.{table.name}"],
            ).fetchall()
            mapped = [(c.name, c.type.compile(engine.dialect).lower()) for c in table.columns]
            assert mapped == columns, table.name
            assert session.scalars(sa.select(cls)).all(), table.name  # every row type loads
        model = session.scalars(sa.select(pyrec.Model)).one()
        assert [f.name for f in model.filters] == ["old"]
        metric = session.get(pyrec.ModelMetric, ("movies", 1, "ndcg", 10))
        assert metric is not None and metric.value == model.versions[0].metrics["ndcg@10"]
        # read-only: rows change through pyrec's functions, which validate them
        model.options = {"params": {"factors": 2}}
        with pytest.raises(FeatureNotSupported, match="read-only"):
            session.commit()
    assert trained.execute("SELECT options->'params' FROM pyrec.models").fetchone() == (
        {"factors": 16, "iterations": 4},
    )


def test_batch_recommend_helper_then_a_bi_view(engine: sa.Engine, trained: Conn) -> None:
    target = pyrec.batch_recommend(engine, "movies", users="SELECT 3", k=4, into_table="recs")
    assert target == "public.recs"
    trained.execute("GRANT SELECT ON movies TO pyrec_reader")  # the view's owner reads it
    trained.execute("SELECT pyrec.create_bi_view('movies', 'recs_titles')")
    with Session(engine) as session:
        out = session.get(pyrec.BatchOutput, ("movies", "public.recs"))
        assert out is not None and out.present and out.bi_views == ["public.recs_titles"]
        titles = session.execute(sa.text("SELECT title FROM recs_titles ORDER BY rank")).all()
    r = pyrec.recommend("movies", 3, 4)
    with Session(engine) as session:
        direct = session.scalars(
            sa.select(Movie.title)
            .join(r, Movie.movie_id == r.c.item_id.cast(sa.Integer))
            .order_by(r.c.rank)
        ).all()
    assert [t for (t,) in titles] == direct
