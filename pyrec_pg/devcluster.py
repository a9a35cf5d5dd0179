"""A throwaway PostgreSQL cluster (initdb + pg_ctl) for the tests and the demo."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("PYREC_PG_BIN", "/usr/lib/postgresql/15/bin"))
REPO = Path(__file__).resolve().parent.parent
SERVER_SITE = REPO / ".build" / "server-site"


class ClusterError(RuntimeError):
    pass


class Cluster:
    """A private cluster in a temporary directory, listening only on a Unix socket there.

    As root, initdb and the server run as the `postgres` user (they refuse to run as root).
    The server's Python (plpython3u) imports a copy of this checkout's pyrec_pg and of the
    pinned deps in `.build/server-site` (`make server-deps`), made at start in the cluster's
    own directory: the checkout itself may sit where the postgres user cannot read (/root).
    """

    def __init__(self, port: int = 5432, settings: dict[str, str] | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pyrec-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.python = self.base / "python"
        self.port = port
        self.settings = settings or {}  # extra postgresql.conf lines, e.g. to preload pg_cron
        self.socket_dir = self.base
        self.os_user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str | Path, env: dict[str, str] | None = None) -> str:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = [
                "runuser",
                "-u",
                self.os_user,
                "--",
                "env",
                *(f"{k}={v}" for k, v in (env or {}).items()),
                *cmd,
            ]
            env = None
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
        if done.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            what = " ".join(str(a) for a in args[:2])
            raise ClusterError(f"{what} failed:\n{done.stdout}{done.stderr}\n{log}")
        return done.stdout

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise ClusterError(f"no PostgreSQL binaries in {PG_BIN}: run 'make postgres' first")
        if not SERVER_SITE.is_dir():
            raise ClusterError(f"{SERVER_SITE} is missing: run 'make server-deps' first")
        shutil.copytree(SERVER_SITE, self.python, ignore=shutil.ignore_patterns("*.pyc"))
        shutil.copytree(
            REPO / "pyrec_pg",
            self.python / "pyrec_pg",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{self.os_user}:", str(self.base)], check=True)
        self._run(
            PG_BIN / "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# pyrec throwaway cluster\nlisten_addresses = ''\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 50\n"
                "shared_buffers = 256MB\n"
            )
            conf.writelines(f"{k} = '{v}'\n" for k, v in self.settings.items())

    def start(self) -> None:
        self._run(
            PG_BIN / "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.socket_dir}",
            "start",
            env={"PYTHONPATH": str(self.python), "OPENBLAS_NUM_THREADS": "2"},
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def __enter__(self) -> Cluster:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
