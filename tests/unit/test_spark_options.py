"""Spark's options: parsed and named when bad, merged over the model's, and a missing engine
named with how to install it."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from pyrec_pg.errors import InvalidParameter, UndefinedFile
from pyrec_pg.jobs.training import _merged_spark
from pyrec_pg.ml import spark
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.spark import SparkAls, SparkOptions


def test_defaults_and_a_full_setting() -> None:
    assert SparkOptions.parse(None) == SparkOptions("local[*]", (), 0)
    got = SparkOptions.parse(
        {
            "master": " spark://h:7077 ",
            "conf": {"spark.executor.memory": "8g", "spark.executor.cores": 4, "x.on": True},
            "partitions": 12,
        }
    )
    assert got.master == "spark://h:7077" and got.partitions == 12
    assert dict(got.conf) == {
        "spark.executor.memory": "8g",
        "spark.executor.cores": "4",
        "x.on": "true",
    }
    # the configuration may hold credentials: a version records the master only
    assert got.as_params() == {
        "engine": "spark",
        "spark_master": "spark://h:7077",
        "spark_read": "trainer",
    }
    jdbc = SparkOptions.parse({"read": "jdbc", "read_partitions": 16})
    assert (jdbc.read, jdbc.read_partitions, jdbc.partitions) == ("jdbc", 16, 0)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("local", "must be a JSON object"),
        ({"workers": 3}, 'unknown key "workers"'),
        ({"master": 7}, "master URL"),
        ({"master": "  "}, "master URL"),
        ({"conf": ["a"]}, "conf must map"),
        ({"conf": {"a": None}}, "conf must map"),
        ({"partitions": "4"}, "must be an integer"),
        ({"partitions": True}, "must be an integer"),
        ({"partitions": -1}, "out of range"),
        ({"read": "odbc"}, "read must be one of trainer, jdbc"),
        ({"read": None}, "read must be one of"),
        ({"read_partitions": 1.5}, "read_partitions must be an integer"),
        ({"read_partitions": 100_001}, "out of range"),
    ],
)
def test_bad_options_are_named(given: Any, says: str) -> None:
    with pytest.raises(InvalidParameter, match=says) as caught:
        SparkOptions.parse(given)
    assert caught.value.hint


def test_the_call_s_spark_options_merge_over_the_model_s() -> None:
    stored = {"master": "yarn", "conf": {"a": "1", "b": "2"}, "partitions": 4}
    options = {"engine": "spark", "spark": {"master": "local[2]", "conf": {"b": "3"}}}
    merged = _merged_spark(options, stored, options["spark"])
    assert merged["spark"] == {"master": "local[2]", "conf": {"a": "1", "b": "3"}, "partitions": 4}
    assert _merged_spark(options, None, options["spark"]) is options


def test_spark_regularization_scales_by_interactions_per_row() -> None:
    # 2 users x 4 items, 4 interactions: 2 per user, 1 per item present (the geometric mean
    # of 2 and 4 / 3 items with interactions)
    m = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0]], dtype=np.float32))
    recipe = SparkAls(Als(regularization=30.0), SparkOptions(), reg_scale=0.5)
    assert recipe.reg_param(m) == pytest.approx(30.0 * 0.5 / np.sqrt(2.0 * 4 / 3))
    assert recipe.params()["engine"] == "spark" and recipe.params()["factors"] == 64


def test_a_python_without_pyspark_is_told_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    monkeypatch.setattr(spark, "_SESSIONS", {})
    with pytest.raises(UndefinedFile, match="needs the Python package pyspark") as caught:
        spark.session(SparkOptions())
    assert caught.value.hint and "make spark" in caught.value.hint


def test_no_java_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyspark")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(spark, "_SESSIONS", {})
    with pytest.raises(UndefinedFile, match="needs a Java runtime"):
        spark.session(SparkOptions())


def test_a_spark_error_is_told_by_its_java_exception() -> None:
    java = RuntimeError(
        "An error occurred while calling o66.fit.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: lost\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages"
    )
    assert spark._cause(java) == (
        "org.apache.spark.SparkException: Job aborted due to stage failure: lost"
    )
    assert spark._cause(ConnectionRefusedError("[Errno 111] refused")) == "[Errno 111] refused"
    assert spark._cause(RuntimeError("")) == "RuntimeError"
