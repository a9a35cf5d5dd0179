"""Load: 8 clients call recommend() for 60 s (pgbench, loopback socket) while the model is
retrained, activated and rolled back: no request may fail."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pyrec_pg.dev.cluster import PG_BIN

Conn = psycopg.Connection[Any]
SECONDS = 60
CLIENTS = 8
SCRIPT = """\\set uid random(1, 1000)
SELECT count(*) FROM pyrec.recommend('movies', :uid::text, 10);
"""  # users 944-1000 are unknown: popular answers, through the same paths


@pytest.mark.slow
def test_recommend_under_load_through_retrains(trained: Conn) -> None:
    info = trained.info
    churn: list[str] = []
    stop = threading.Event()

    def retrain() -> None:
        with psycopg.connect(info.dsn, autocommit=True) as admin:
            while not stop.is_set():
                admin.execute("CALL pyrec.train('movies')")
                churn.append("train")
                if stop.wait(2):
                    break
                admin.execute("SELECT pyrec.rollback('movies')")
                churn.append("rollback")
                stop.wait(2)

    with tempfile.TemporaryDirectory(prefix="pyrec-load-") as tmp:
        script = Path(tmp) / "recommend.sql"
        script.write_text(SCRIPT)
        worker = threading.Thread(target=retrain, daemon=True)
        worker.start()
        started = time.monotonic()
        done = subprocess.run(
            [
                str(PG_BIN / "pgbench"),
                *("-n", "-M", "prepared", "-c", str(CLIENTS), "-j", "2", "-T", str(SECONDS)),
                *("-f", str(script), "-l", "--log-prefix", f"{tmp}/lat"),
                *("-h", str(info.host), "-p", str(info.port), "-U", info.user, info.dbname),
            ],
            capture_output=True,
            text=True,
            timeout=SECONDS + 120,
            cwd=tmp,
        )
        elapsed = time.monotonic() - started
        stop.set()
        worker.join(timeout=120)
        # per-transaction log lines: client, transaction, latency (us), script, epoch, us
        latencies = sorted(
            int(line.split()[2])
            for log in Path(tmp).glob("lat*")
            for line in log.read_text().splitlines()
        )
    assert done.returncode == 0, done.stderr + done.stdout
    failed = [line for line in done.stdout.splitlines() if "failed" in line]
    processed = [line for line in done.stdout.splitlines() if "actually processed" in line]
    assert processed and latencies, done.stdout
    assert all(line.rstrip().endswith(" 0") or "(0.000%)" in line for line in failed), failed
    assert churn.count("train") >= 2, churn  # the retrains really overlapped the load
    p50 = latencies[len(latencies) // 2] / 1000
    p99 = latencies[int(0.99 * (len(latencies) - 1))] / 1000
    print(
        f"\nload: {len(latencies)} requests in {elapsed:.0f} s from {CLIENTS} clients,"
        f" {len(latencies) / SECONDS:.0f}/s, 0 errors, p50 {p50:.2f} ms,"
        f" p99 {p99:.2f} ms; during it {churn.count('train')} trainings and"
        f" {churn.count('rollback')} rollbacks"
    )
