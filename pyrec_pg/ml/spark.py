"""ALS fitted on Apache Spark MLlib: pyrec's ALS objective solved by a Spark cluster."""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.errors import EngineFailure, InvalidParameter, PyrecError, UndefinedFile
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.base import Factors

INSTALL_HINT = (
    "install the engine into the Python that trains: make spark (pyspark and Java 17), or"
    " pip install 'pyrec_pg[spark]' with a Java 17 runtime on the PATH or in JAVA_HOME"
)
# what pyrec sets unless the model's spark.conf says otherwise: no web UI port opened on the
# trainer's host, no progress bars on its terminal (the pairs and the factors travel as Arrow
# tables, which Spark takes and gives without a setting)
DEFAULT_CONF = {
    "spark.app.name": "pyrec train",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
}
SPARK_KEYS = ("master", "conf", "partitions")
# Spark's regParam per unit of pyrec's regularization per interaction of a row (SparkAls):
# the best of bench/sweep_spark.py's grid on validation splits of MovieLens-100K
REG_SCALE = 0.7


@dataclass(frozen=True)
class SparkOptions:
    """Where and how Spark runs: the model's options.spark (or the call's)."""

    master: str = "local[*]"  # local[N], spark://host:7077, yarn, k8s://..., passed through
    conf: tuple[tuple[str, str], ...] = ()  # Spark configuration, e.g. spark.executor.memory
    partitions: int = 0  # ALS blocks of users and of items; 0: Spark's default parallelism

    @classmethod
    def parse(cls, given: Any) -> SparkOptions:
        """From options.spark (a JSON object; null or absent: the defaults), naming any bad
        part."""
        if given is None:
            return cls()
        if not isinstance(given, dict):
            raise InvalidParameter(
                "options.spark must be a JSON object",
                hint='for example {"master": "spark://host:7077", "conf":'
                ' {"spark.executor.memory": "8g"}}',
            )
        unknown = sorted(set(given) - set(SPARK_KEYS))
        if unknown:
            raise InvalidParameter(
                f'unknown key "{unknown[0]}" in options.spark',
                hint=f"options.spark takes: {', '.join(SPARK_KEYS)}",
            )
        master = given.get("master", cls.master)
        if not isinstance(master, str) or not master.strip():
            raise InvalidParameter(
                "options.spark.master must be a Spark master URL",
                hint="local[*] (the default), local[4], spark://host:7077, yarn or k8s://...",
            )
        conf = given.get("conf", {})
        if not isinstance(conf, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in conf.items()
        ):
            raise InvalidParameter(
                "options.spark.conf must map Spark settings to values",
                hint='for example {"spark.driver.memory": "4g", "spark.executor.cores": 4}',
            )
        partitions = given.get("partitions", 0)
        if isinstance(partitions, bool) or not isinstance(partitions, int):
            raise InvalidParameter(
                "options.spark.partitions must be an integer", hint=f"got {partitions!r}"
            )
        if not 0 <= partitions <= 100_000:
            raise InvalidParameter(
                f"options.spark.partitions is out of range: {partitions}",
                hint="0 (Spark's default parallelism) up to 100000",
            )
        pairs = tuple(sorted((k, _conf_text(v)) for k, v in conf.items()))
        return cls(master=master.strip(), conf=pairs, partitions=partitions)

    def as_params(self) -> dict[str, Any]:
        """What a version's params record of where it was trained (the master, not the
        configuration, which may hold credentials)."""
        return {"engine": "spark", "spark_master": self.master}


def _conf_text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _require() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError as e:
        raise UndefinedFile(
            "training with engine spark needs the Python package pyspark, which the Python"
            " running this training lacks",
            hint=INSTALL_HINT,
            detail=str(e),
        ) from e
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise UndefinedFile(
            "training with engine spark needs a Java runtime (17 or later): no java on the"
            " PATH and no JAVA_HOME",
            hint=INSTALL_HINT,
        )


_SESSIONS: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def session(options: SparkOptions) -> Any:
    """The process's SparkSession for `options`, started on first use (a few seconds) and
    kept for later trainings; a JVM holds one at a time, so other options stop it first."""
    key = (options.master, options.conf)
    if key in _SESSIONS:
        return _SESSIONS[key]
    _require()
    stop()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(options.master)
    conf = {**DEFAULT_CONF, **dict(options.conf)}
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    if options.master.startswith("local") and not spark.sparkContext.getCheckpointDir():
        # ALS checkpoints its factors every 10 iterations when a directory is set, which
        # keeps long lineages (many iterations) from overflowing the JVM's stack
        folder = tempfile.mkdtemp(prefix="pyrec-spark-")
        atexit.register(shutil.rmtree, folder, True)
        spark.sparkContext.setCheckpointDir(folder)
    _SESSIONS[key] = spark
    return spark


def stop() -> None:
    """Stop the process's SparkSession, if any (the next training starts another)."""
    for spark in _SESSIONS.values():
        with suppress(Exception):  # a JVM already gone has nothing left to stop
            spark.stop()
    _SESSIONS.clear()


@contextmanager
def _failures(options: SparkOptions) -> Iterator[None]:
    """Spark's errors (a failed job, a JVM gone, a master that does not answer) as
    EngineFailure, naming the master; the session is dropped, so the next training starts a
    new one."""
    try:
        yield
    except PyrecError:
        raise
    except Exception as e:
        stop()
        raise EngineFailure(
            f"Spark failed to fit the model (master {options.master}): {_cause(e)}",
            hint="the Spark driver's log says more; the version serving before this training"
            " still serves",
            detail=type(e).__name__,
        ) from e


def _cause(e: Exception) -> str:
    """The line of a Spark error that says what went wrong: py4j's first line only names the
    Java call ("An error occurred while calling o66.fit."), the Java exception follows."""
    lines = [ln.strip(" :") for ln in str(e).splitlines() if ln.strip(" :")]
    named = [ln for ln in lines if "Exception:" in ln or "Error:" in ln]
    return ((named or lines or [type(e).__name__])[0])[:500]


@dataclass(frozen=True)
class SparkAls:
    """pyrec's ALS (its factors, iterations, regularization, alpha, seed) fitted by Spark
    MLlib's implicit-feedback ALS.

    The objective is the same (confidence 1 + alpha * w on observed pairs, preference 1;
    0 elsewhere), with two differences: Spark solves each row exactly (Cholesky) where pyrec
    runs `cg_steps` of conjugate gradient, and Spark scales the regularization of each row by
    its number of interactions (ALS-WR). So Spark gets regParam = regularization x
    `reg_scale` / the geometric mean of the interactions per user and per item: at scale 1
    the average penalty is pyrec's, and heavy rows are penalized more than pyrec does, which
    costs accuracy; `reg_scale`'s default is the best of a sweep on validation splits of
    MovieLens-100K's training parts (bench/sweep_spark.py). `threads` and `cg_steps` do not
    apply: the master says how many cores Spark uses.
    """

    name: ClassVar[str] = "als"
    als: Als
    spark: SparkOptions = field(default_factory=SparkOptions)
    reg_scale: float = REG_SCALE

    def params(self) -> dict[str, Any]:
        return {**self.als.params(), **self.spark.as_params()}

    def reg_param(self, confidence: sp.csr_matrix) -> float:
        """Spark's regParam for pyrec's regularization on this matrix (see the class)."""
        nnz = max(int(confidence.nnz), 1)
        users = max(int(np.count_nonzero(np.diff(confidence.indptr))), 1)
        items = max(int(np.unique(confidence.indices).size), 1)
        per_row = float(np.sqrt((nnz / users) * (nnz / items)))
        return float(self.als.regularization * self.reg_scale / per_row)

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        """Fit on a (users x items) matrix of interaction weights, shipped to Spark as
        (user, item, weight) rows; factors come back in the matrix's row and column order
        (zeros for a row or column without interactions)."""
        options = self.spark
        with _failures(options):
            spark = session(options)
            pa: Any = importlib.import_module("pyarrow")  # pyspark's own dependency
            from pyspark.ml.recommendation import ALS

            coo = sp.coo_matrix(confidence)
            pairs = pa.table(
                {
                    "u": coo.row.astype(np.int32),
                    "i": coo.col.astype(np.int32),
                    "w": coo.data.astype(np.float32),
                }
            )
            del coo
            frame = spark.createDataFrame(pairs)  # Arrow batches, no row-by-row pickling
            del pairs
            blocks = options.partitions or spark.sparkContext.defaultParallelism
            als = ALS(
                rank=self.als.factors,
                maxIter=self.als.iterations,
                regParam=self.reg_param(confidence),
                alpha=self.als.alpha,
                implicitPrefs=True,
                nonnegative=False,
                seed=self.als.seed,
                numUserBlocks=blocks,
                numItemBlocks=blocks,
                userCol="u",
                itemCol="i",
                ratingCol="w",
            )
            model = als.fit(frame)
            users = _collect(model.userFactors, confidence.shape[0], self.als.factors)
            items = _collect(model.itemFactors, confidence.shape[1], self.als.factors)
        return self.als.foldable(Factors(users=users, items=items))


def _collect(factors: Any, rows: int, dims: int) -> npt.NDArray[np.float32]:
    """Spark's (id, features) rows as a (rows x dims) float32 matrix indexed by id."""
    out = np.zeros((rows, dims), dtype=np.float32)
    table = factors.toArrow()
    if table.num_rows:
        ids = table.column("id").to_numpy().astype(np.int64)
        values = table.column("features").combine_chunks().flatten().to_numpy()
        out[ids] = np.asarray(values, dtype=np.float32).reshape(-1, dims)
    return out
