"""The throwaway cluster stops its server when its Python process is terminated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import sys, time
from pyrec_pg.dev.cluster import Cluster
with Cluster() as c:
    print(c.data, flush=True)
    time.sleep(120)
"""


def test_sigterm_stops_the_server_and_removes_its_directory() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ) as proc:
        try:
            assert proc.stdout is not None
            data = Path(proc.stdout.readline().strip())
            pid = int((data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)  # the postmaster runs
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        finally:
            proc.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"postmaster {pid} still runs after its Python was terminated")
    assert not data.exists()
