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

from pyrec_pg.errors import (
    EngineFailure,
    InsufficientData,
    InvalidParameter,
    PyrecError,
    UndefinedFile,
)
from pyrec_pg.ml import evaluation
from pyrec_pg.ml.interactions import times_matrix
from pyrec_pg.ml.recipes.als import Als
from pyrec_pg.ml.recipes.base import Factors
from pyrec_pg.ml.recipes.popularity import Popularity, scaled

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
SPARK_KEYS = ("master", "conf", "partitions", "read", "read_partitions")
# where the interactions are read: by pyrec's reader in the trainer, which ships the pairs to
# Spark, or by Spark's executors through JDBC, in partitions by a hash of the user
READS = ("trainer", "jdbc")
# Debian's libpostgresql-jdbc-java (make spark): on the driver's and executors' class path
# unless spark.jars or spark.jars.packages is configured
JDBC_JAR = "/usr/share/java/postgresql.jar"
# reading through JDBC, the trainer holds the pairs of at most this many users (every n-th
# user code): holdout metrics and the index's calibration are measured on them
SAMPLE_USERS = 20_000
# Spark's regParam per unit of pyrec's regularization per interaction of a row (SparkAls):
# the best of bench/sweep_spark.py's grid on validation splits of MovieLens-100K
REG_SCALE = 0.7


@dataclass(frozen=True)
class SparkOptions:
    """Where and how Spark runs: the model's options.spark (or the call's)."""

    master: str = "local[*]"  # local[N], spark://host:7077, yarn, k8s://..., passed through
    conf: tuple[tuple[str, str], ...] = ()  # Spark configuration, e.g. spark.executor.memory
    partitions: int = 0  # ALS blocks of users and of items; 0: Spark's default parallelism
    read: str = "trainer"  # one of READS
    read_partitions: int = 0  # JDBC queries of a jdbc read; 0: Spark's default parallelism

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
        read = given.get("read", cls.read)
        if read not in READS:
            raise InvalidParameter(
                f"options.spark.read must be one of {', '.join(READS)}, not {read!r}",
                hint="trainer: pyrec's reader ships the pairs to Spark; jdbc: Spark's executors"
                " read them through JDBC",
            )
        pairs = tuple(sorted((k, _conf_text(v)) for k, v in conf.items()))
        return cls(
            master=master.strip(),
            conf=pairs,
            partitions=_count(given, "partitions"),
            read=read,
            read_partitions=_count(given, "read_partitions"),
        )

    def as_params(self) -> dict[str, Any]:
        """What a version's params record of where it was trained (the master, not the
        configuration, which may hold credentials)."""
        return {"engine": "spark", "spark_master": self.master, "spark_read": self.read}


def _count(given: dict[str, Any], key: str) -> int:
    value = given.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"options.spark.{key} must be an integer", hint=f"got {value!r}")
    if not 0 <= value <= 100_000:
        raise InvalidParameter(
            f"options.spark.{key} is out of range: {value}",
            hint="0 (Spark's default parallelism) up to 100000",
        )
    return value


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
    if not {"spark.jars", "spark.jars.packages"} & set(conf) and os.path.exists(JDBC_JAR):
        # always, not only for a jdbc read: the driver's class path is fixed at the JVM's start
        conf["spark.jars"] = JDBC_JAR
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    if "spark.sql.shuffle.partitions" not in conf:
        # a jdbc read groups and joins in Spark SQL, whose default of 200 shuffle partitions
        # made grouping 600k pairs on local[2] take 13 s (0.4 s with 8); Spark's tuning guide
        # advises 2 to 3 tasks per core
        cores = spark.sparkContext.defaultParallelism
        spark.conf.set("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
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
        users = int(np.count_nonzero(np.diff(confidence.indptr)))
        items = int(np.unique(confidence.indices).size)
        return self._reg_param(int(confidence.nnz), users, items)

    def _reg_param(self, nnz: int, users: int, items: int) -> float:
        nnz, users, items = max(nnz, 1), max(users, 1), max(items, 1)
        per_row = float(np.sqrt((nnz / users) * (nnz / items)))
        return float(self.als.regularization * self.reg_scale / per_row)

    def _estimator(self, spark: Any, reg_param: float) -> Any:
        from pyspark.ml.recommendation import ALS

        blocks = self.spark.partitions or spark.sparkContext.defaultParallelism
        return ALS(
            rank=self.als.factors,
            maxIter=self.als.iterations,
            regParam=reg_param,
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

    def fit(self, confidence: sp.csr_matrix) -> Factors:
        """Fit on a (users x items) matrix of interaction weights, shipped to Spark as
        (user, item, weight) rows; factors come back in the matrix's row and column order
        (zeros for a row or column without interactions)."""
        options = self.spark
        with _failures(options):
            spark = session(options)
            frame = spark.createDataFrame(_arrow_pairs(confidence))
            model = self._estimator(spark, self.reg_param(confidence)).fit(frame)
            users = _collect(model.userFactors, confidence.shape[0], self.als.factors)
            items = _collect(model.itemFactors, confidence.shape[1], self.als.factors)
        return self.als.foldable(Factors(users=users, items=items))

    def fit_source(self, source: JdbcSource, holdout: Holdout | None) -> SourceFit:
        """Read the pairs with Spark's executors through JDBC, code their ids, fit there; with
        `holdout`, first measure the recipe on a split of a sample of the users (the same
        split code as any training) while the other users' pairs all train."""
        options = self.spark
        with _failures(options):
            spark = session(options)
            conf = spark.sparkContext.getConf()
            if not (conf.get("spark.jars") or conf.get("spark.jars.packages")):
                _require_driver(options)
            read = _Read(spark, source, options.read_partitions)
            try:
                read.load()
                return self._fit_read(spark, read, holdout)
            finally:
                read.release()

    def _fit_read(self, spark: Any, read: _Read, holdout: Holdout | None) -> SourceFit:
        from pyspark.sql import functions as F

        sample, times = read.sample()
        n_users, n_items = sample.shape
        # counted before the fits, while the coded pairs are the executors' only cache
        distinct, weights = read.distinct_items(n_users), read.weights(n_items)
        metrics: dict[str, Any] = {}
        if holdout is not None:
            rows = np.arange(0, n_users, read.stride)
            sub = sp.csr_matrix(sample[rows])
            train, test = evaluation.split(
                sub,
                holdout.protocol,
                holdout.share,
                holdout.seed,
                sp.csr_matrix(times[rows]) if times is not None else None,
            )
            kept = sp.coo_matrix(train)
            back = spark.createDataFrame(
                _arrow_pairs(sp.csr_matrix((kept.data, (rows[kept.row], kept.col)), sample.shape))
            )
            others = read.coded.filter(F.col("u") % read.stride != 0).select("u", "i", "w")
            estimator = self._estimator(
                spark, self._reg_param(read.pairs - test.nnz, n_users, n_items)
            )
            model = estimator.fit(others.unionByName(back))
            users = model.userFactors.filter(F.col("id") % read.stride == 0).select(
                (F.col("id") / read.stride).cast("int").alias("id"), "features"
            )
            fitted = Factors(
                users=_collect(users, rows.size, self.als.factors),
                items=_collect(model.itemFactors, n_items, self.als.factors),
            )
            popular = Popularity().fit(train)
            metrics = evaluation.ranking_metrics(fitted, train, test, fallback=popular)
            baseline = evaluation.ranking_metrics(popular, train, test)
            metrics.update(
                protocol=holdout.protocol,
                holdout=holdout.share,
                seed=holdout.seed,
                baseline={"popularity": baseline},
                sampled_users=int(rows.size),
            )
        estimator = self._estimator(spark, self._reg_param(read.pairs, n_users, n_items))
        model = estimator.fit(read.coded.select("u", "i", "w"))
        factors = Factors(
            users=_collect(model.userFactors, n_users, self.als.factors),
            items=_collect(model.itemFactors, n_items, self.als.factors),
        )
        return SourceFit(
            users=read.ids("u", n_users),
            items=read.ids("i", n_items),
            factors=self.als.foldable(factors),
            n_items=distinct,
            popularity=scaled(weights),
            pairs=read.pairs,
            rows_read=read.rows_read,
            sample=sample,
            metrics=metrics,
        )


@dataclass(frozen=True)
class JdbcSource:
    """What Spark's executors read through JDBC: a model's pairs (store.interactions'
    PairsSql) at a database's URL, with the properties (credentials) to connect."""

    relation: str  # the interactions relation, for messages
    url: str
    properties: tuple[tuple[str, str], ...]
    pairs: str
    distinct: str | None


@dataclass(frozen=True)
class Holdout:
    protocol: str
    share: float
    seed: int


@dataclass(frozen=True)
class SourceFit:
    """A fit on pairs that stayed in Spark: what the trainer gets back."""

    users: npt.NDArray[np.str_]  # user code -> id
    items: npt.NDArray[np.str_]
    factors: Factors
    n_items: npt.NDArray[np.int32]  # per user: distinct items, as serving counts them
    popularity: npt.NDArray[np.float32]
    pairs: int
    rows_read: int
    sample: sp.csr_matrix  # (users x items): only the sampled users' rows hold their pairs
    metrics: dict[str, Any]


def _require_driver(options: SparkOptions) -> None:
    raise UndefinedFile(
        "reading through JDBC needs the PostgreSQL JDBC driver on Spark's class path, and"
        f" there is none at {JDBC_JAR} nor in spark.jars",
        hint="make spark installs Debian's libpostgresql-jdbc-java; elsewhere set"
        ' options.spark.conf {"spark.jars": "/path/to/postgresql.jar"} or'
        ' {"spark.jars.packages": "org.postgresql:postgresql:42.7.4"}',
        detail=f"master {options.master}",
    )


class _Read:
    """A model's pairs read by Spark's executors and coded there: user and item ids become
    dense int codes (what ALS takes), without a pass through the driver."""

    def __init__(self, spark: Any, source: JdbcSource, partitions: int) -> None:
        self.spark, self.source = spark, source
        self.parts = partitions or spark.sparkContext.defaultParallelism
        self._kept: list[Any] = []  # what release() drops from the executors' caches
        # Spark DataFrames, set by load(): (u, uc), (i, ic), and the coded (u, i, w, n, t)
        self.users: Any = None
        self.items: Any = None
        self.coded: Any = None
        self.pairs = self.rows_read = self.n_users = self.n_items = 0
        self.stride = 1

    def load(self) -> None:
        """Read, number the ids, cache the coded pairs on the executors and count them."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        raw = self._keep(self._jdbc(self.source.pairs).persist(StorageLevel.MEMORY_AND_DISK))
        users, self.n_users = _codes(raw, "u")
        items, self.n_items = _codes(raw, "i")
        self.users, self.items = self._keep(users), self._keep(items)
        coded = (
            raw.join(self.users, "u")
            .join(self.items, "i")
            .select(
                F.col("uc").alias("u"),
                F.col("ic").alias("i"),
                F.col("w").cast("float").alias("w"),
                "n",
                "t",
            )
        )
        self.coded = self._keep(coded.persist(StorageLevel.MEMORY_AND_DISK))
        totals = self.coded.agg(F.count("*").alias("pairs"), F.sum("n").alias("rows")).first()
        raw.unpersist()  # the coded pairs are cached: the text ones are not needed again
        self.pairs, self.rows_read = int(totals["pairs"]), int(totals["rows"] or 0)
        if not self.pairs:
            raise InsufficientData(
                f"{self.source.relation} has no usable interactions",
                hint="training needs rows with a non-NULL user and item (and a positive event"
                " weight)",
            )
        self.stride = max(1, -(-self.n_users // SAMPLE_USERS))

    def _keep(self, frame: Any) -> Any:
        self._kept.append(frame)
        return frame

    def _jdbc(self, query: str) -> Any:
        """`query` read in self.parts JDBC queries, each the users of one hash bucket (a
        condition Postgres pushes below the query's GROUP BY)."""
        props = {
            **dict(self.source.properties),
            "driver": "org.postgresql.Driver",
            "fetchsize": "10000",
        }
        predicates = [f"(hashtext(u) & 2147483647) % {self.parts} = {k}" for k in range(self.parts)]
        return self.spark.read.jdbc(
            self.source.url, f"({query}) AS pairs", predicates=predicates, properties=props
        )

    def sample(self) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
        """Every `stride`-th user's pairs, as (users x items) matrices of weights and of last
        event times (None when the query read no times)."""
        from pyspark.sql import functions as F

        table = self.coded.filter(F.col("u") % self.stride == 0).select("u", "i", "w", "t")
        got = table.toArrow()
        u, i = (got.column(c).to_numpy().astype(np.int64) for c in ("u", "i"))
        w = got.column("w").to_numpy().astype(np.float32)
        shape = (self.n_users, self.n_items)
        weights = sp.csr_matrix((w, (u, i)), shape=shape)
        t = got.column("t").to_numpy().astype(np.float64)
        return weights, times_matrix(t, u, i, shape) if t.any() else None

    def ids(self, side: str, size: int) -> npt.NDArray[np.str_]:
        frame = self.users if side == "u" else self.items
        got = frame.toArrow()
        out = np.empty(size, dtype=object)
        out[got.column(f"{side}c").to_numpy()] = got.column(side).to_pylist()
        return np.asarray(out, dtype=str)

    def distinct_items(self, size: int) -> npt.NDArray[np.int32]:
        """Per user code: their distinct items over all their rows (the matrix's row counts
        unless options leave events out)."""
        from pyspark.sql import functions as F

        if self.source.distinct is None:
            counts = self.coded.groupBy("u").count().withColumnRenamed("count", "d")
        else:
            counts = (
                self._jdbc(self.source.distinct)
                .join(self.users, "u")
                .select(F.col("uc").alias("u"), "d")
            )
        got = counts.toArrow()
        out = np.zeros(size, dtype=np.int32)
        out[got.column("u").to_numpy()] = got.column("d").to_numpy()
        return out

    def weights(self, size: int) -> npt.NDArray[np.float64]:
        from pyspark.sql import functions as F

        got = self.coded.groupBy("i").agg(F.sum("w").alias("w")).toArrow()
        out = np.zeros(size, dtype=np.float64)
        out[got.column("i").to_numpy()] = got.column("w").to_numpy()
        return out

    def release(self) -> None:
        for frame in self._kept:
            with suppress(Exception):  # a session already stopped holds nothing
                frame.unpersist()


def _codes(frame: Any, column: str) -> tuple[Any, int]:
    """`column`'s distinct values numbered 0..n-1 (column c, as an int), and n: partition by
    partition, each offset by the sizes of the partitions before it. Sorted within their
    partition (hash partitions of the value), so that the same data on the same number of
    cores is numbered the same, and with it the sample a holdout splits."""
    from pyspark.sql import functions as F

    distinct = (
        frame.select(column)
        .distinct()
        .sortWithinPartitions(column)
        .select(
            column, F.spark_partition_id().alias("p"), F.monotonically_increasing_id().alias("m")
        )
        .localCheckpoint(eager=True)  # both numbers depend on where a row is: fix them once
    )
    sizes = dict(distinct.groupBy("p").count().collect())
    starts, total = [], 0
    for p in range(max(sizes, default=-1) + 1):
        starts.append(total)
        total += int(sizes.get(p, 0))
    start = F.element_at(F.array(*[F.lit(s) for s in starts] or [F.lit(0)]), F.col("p") + 1)
    # monotonically_increasing_id is the partition's number << 33 plus the row's within it
    within = F.col("m") - F.shiftleft(F.col("p").cast("long"), 33)
    return distinct.select(column, (start + within).cast("int").alias(f"{column}c")), total


def _arrow_pairs(confidence: sp.csr_matrix) -> Any:
    """A matrix's nonzeros as an Arrow table (u, i, w), which Spark takes in batches."""
    pa: Any = importlib.import_module("pyarrow")  # pyspark's own dependency
    coo = sp.coo_matrix(confidence)
    return pa.table(
        {
            "u": coo.row.astype(np.int32),
            "i": coo.col.astype(np.int32),
            "w": coo.data.astype(np.float32),
        }
    )


def _collect(factors: Any, rows: int, dims: int) -> npt.NDArray[np.float32]:
    """Spark's (id, features) rows as a (rows x dims) float32 matrix indexed by id."""
    out = np.zeros((rows, dims), dtype=np.float32)
    table = factors.toArrow()
    if table.num_rows:
        ids = table.column("id").to_numpy().astype(np.int64)
        values = table.column("features").combine_chunks().flatten().to_numpy()
        out[ids] = np.asarray(values, dtype=np.float32).reshape(-1, dims)
    return out
