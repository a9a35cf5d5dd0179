"""The throwaway cluster leaves no server or directory behind: terminated, or failing to start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrec_pg.dev.cluster import Cluster, ClusterError

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


def test_a_server_that_does_not_start_leaves_no_directory() -> None:
    cluster = Cluster(settings={"shared_preload_libraries": "no_such_library"})
    with pytest.raises(ClusterError), cluster:
        pass
    assert not cluster.base.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
