"""Training on Spark (local mode, this machine) against training in the database.

The first lines printed name the machine, the versions and the server settings; the cluster
runs with production durability (fsync, synchronous_commit and full_page_writes on).

Data: pyrec_pg.dev.synthetic at each --sizes (Zipf popularity, 20 taste clusters, integer
ids), as bench/bench_training.py loads it; model "als", 64 factors, 15 iterations, holdout 0
(no evaluation fit).

database: CALL pyrec.train, wall clock from the client, in a session that has already
imported pyrec_pg and implicit; its phases polled from pyrec._runs; memory: the backend's
private memory (RssAnon) at its peak, sampled every 20 ms.
spark: `pyrec train MODEL --engine spark --spark-master local[2]` (the external trainer, as a
user runs it: a fresh process, whose JVM starts in it), wall clock of the whole command;
its phases polled from pyrec.training_runs (its "training" includes starting Spark's JVM, about 4 s
here); memory: the resident memory of the trainer and its
JVM together (their RSS summed, sampled every 100 ms), and each one's peak. Both fit on the
2 cores (pyrec's solver: 2 threads; Spark: local[2]). Spark's driver memory is --driver-memory
(8g by default: 1g, Spark's default, does not hold 10M interactions).
--reads: who reads the interactions for Spark (options.spark.read): "trainer" (pyrec's reader
in the trainer, which sends the pairs to Spark as Arrow) and/or "jdbc" (Spark's executors,
through JDBC over TCP to 127.0.0.1, in --read-partitions queries by a hash of the user; in
local mode the executors run in the driver's JVM, so their memory is the JVM's).

Each figure: --repeat runs (default 3) of each, interleaved so drift hits both, shown as min /
median / max.
Run: .venv/bin/python -m bench.bench_spark [--sizes 1M,10M] [--repeat 3] [--reads trainer,jdbc]
(needs make spark)
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pyspark

from pyrec_pg.dev.cluster import Cluster

from .bench_training import (
    DURABLE,
    REPO,
    Run,
    header,
    label,
    load_size,
    parse_size,
    proc_status,
    run_pyrec,
    spread,
)

MASTER = "local[2]"
SAMPLE_SECONDS = 0.1


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


@dataclass
class SparkRun:
    total: float
    phases: dict[str, float]
    peak_sum: int  # bytes: trainer + JVM RSS, summed at the same sample
    peak_trainer: int
    peak_jvm: int


@dataclass
class Case:
    n: int
    setup: dict[str, float]
    database: list[Run] = field(default_factory=list)
    spark: dict[str, list[SparkRun]] = field(default_factory=dict)  # by read


class Sampler(threading.Thread):
    """The memory of a process and its children, and the phase of the running training."""

    def __init__(self, dsn: str, pid: int) -> None:
        super().__init__(daemon=True)
        self.dsn, self.pid = dsn, pid
        self.stop = threading.Event()
        self.peak_sum = self.peak_trainer = self.peak_jvm = 0
        self.phases: dict[str, float] = {}

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    trainer = proc_status(self.pid).get("VmRSS", 0)
                    jvm = sum(proc_status(c).get("VmRSS", 0) for c in _children(self.pid))
                except OSError:
                    break
                self.peak_trainer = max(self.peak_trainer, trainer)
                self.peak_jvm = max(self.peak_jvm, jvm)
                self.peak_sum = max(self.peak_sum, trainer + jvm)
                row = conn.execute(
                    "SELECT phase FROM pyrec.training_runs WHERE status = 'running'"
                    " ORDER BY run_id DESC LIMIT 1"
                ).fetchone()
                if row is not None and row[0]:
                    self.phases.setdefault(str(row[0]), time.perf_counter())
                self.stop.wait(SAMPLE_SECONDS)


def run_spark(dsn: str, model: str, driver_memory: str, read: str, parts: int) -> SparkRun:
    command = [sys.executable, "-m", "pyrec_pg.cli", "train", model, "--dsn", dsn, "--json"]
    command += ["--engine", "spark", "--spark-master", MASTER, "--spark-read", read]
    if read == "jdbc":
        command += ["--spark-read-partitions", str(parts)]
    command += ["--spark-conf", f"spark.driver.memory={driver_memory}"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = Sampler(dsn, proc.pid)
    sampler.start()
    out, err = proc.communicate()
    ended = time.perf_counter()
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"spark training failed:\n{out}{err}")
    json.loads(out)  # the summary: the training succeeded
    marks = [("starting", started), *sorted(sampler.phases.items(), key=lambda kv: kv[1])]
    marks.append(("end", ended))
    phases = {p: t1 - t0 for (p, t0), (_, t1) in itertools.pairwise(marks)}
    return SparkRun(
        ended - started, phases, sampler.peak_sum, sampler.peak_trainer, sampler.peak_jvm
    )


def gb(xs: list[int]) -> str:
    """min / median / max in GB."""
    return " / ".join(f"{x / 2**30:.2f}" for x in (min(xs), statistics.median(xs), max(xs)))


def report(case: Case) -> None:
    db = case.database
    users, items, pairs = db[0].shape
    print(
        f"\n{label(case.n)} interactions: {users} users x {items} items, {pairs} pairs;"
        f" min / median / max of {len(db)} runs"
    )
    print(f"  database: CALL pyrec.train                {spread([r.total for r in db])} s")
    for phase in ("reading", "training", "writing"):
        print(f"      phase {phase:<30} {spread([r.steps.get(phase, 0.0) for r in db])} s")
    for read, sk in case.spark.items():
        name = f"spark, read {read}: pyrec train --engine spark"
        print(f"  {name:<41} {spread([r.total for r in sk])} s")
        for phase in ("starting", "reading", "training", "writing"):
            print(f"      phase {phase:<30} {spread([r.phases.get(phase, 0.0) for r in sk])} s")
    anon = [max(r.anon.values(), default=0) - r.anon_base for r in db]
    print(f"  memory, database: the backend's private peak above its start {gb(anon)} GB")
    for read, sk in case.spark.items():
        print(
            f"  memory, spark read {read}: trainer + JVM {gb([r.peak_sum for r in sk])} GB"
            f" (trainer {gb([r.peak_trainer for r in sk])}, JVM {gb([r.peak_jvm for r in sk])})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="1M,10M", help="comma-separated, e.g. 1M or 1M,10M")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--driver-memory", default="8g", help="Spark's spark.driver.memory")
    ap.add_argument("--reads", default="trainer,jdbc", help="options.spark.read to measure")
    ap.add_argument("--read-partitions", type=int, default=4, help="JDBC queries of a jdbc read")
    args = ap.parse_args()
    reads = args.reads.split(",")
    started = time.perf_counter()
    cases: list[Case] = []
    with Cluster(settings=DURABLE, tcp=True) as cluster:
        dsn = cluster.dsn()
        over_tcp = cluster.tcp_dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pyrec CASCADE")
        header(dsn, False)
        print(
            f"spark: pyspark {pyspark.__version__}, master {MASTER}, spark.driver.memory"
            f" {args.driver_memory}, reads {args.reads} (jdbc: {args.read_partitions} queries);"
            " database: pyrec's solver, 2 threads",
            flush=True,
        )
        for n in [parse_size(s) for s in args.sizes.split(",")]:
            case = Case(n, load_size(dsn, n, args.seed, ["int"]))
            model = f"bench_{n}_int"
            for _ in range(args.repeat):
                case.database.append(run_pyrec(dsn, model))
                for read in reads:
                    where = over_tcp if read == "jdbc" else dsn
                    got = run_spark(where, model, args.driver_memory, read, args.read_partitions)
                    case.spark.setdefault(read, []).append(got)
                spark = ", ".join(f"spark {r} {v[-1].total:.1f} s" for r, v in case.spark.items())
                print(f"  run: database {case.database[-1].total:.1f} s, {spark}", flush=True)
            report(case)
            cases.append(case)
    print("\nsummary (median seconds; ratio = spark / database):")
    for c in cases:
        b = statistics.median([r.total for r in c.database])
        dbfit = statistics.median([r.steps.get("training", 0.0) for r in c.database])
        for read, sk in c.spark.items():
            a = statistics.median([r.total for r in sk])
            fit = statistics.median([r.phases.get("training", 0.0) for r in sk])
            print(
                f"  {label(c.n):>5}: spark read {read:<7} {a:8.1f}  database {b:8.1f}"
                f"  ratio {a / b:5.1f}x; phase training {fit:.1f} vs {dbfit:.1f} s"
            )
    print(f"whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
