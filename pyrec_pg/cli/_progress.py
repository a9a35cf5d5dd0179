"""A progress line on stderr (a terminal only) for long work, read from pyrec's run views."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any

import psycopg

from pyrec_pg.cli._db import connect

_WIDTH = 24
_SPIN = "|/-\\"


class Progress:
    """While open, redraws `label [#####---]  42% training  3.1 s` on stderr every 0.25 s.

    Training and batch jobs commit their phase and percent to pyrec._runs, so a second
    connection sees them while the first is busy; `view` is pyrec.training_runs or
    pyrec.batch_jobs, or None for work without a run row (then: elapsed time only). Silent
    when stderr is not a terminal, and whenever the second connection fails: progress is
    decoration, never a reason for a command to fail.
    """

    def __init__(self, dsn: str, label: str, model: str, view: str | None = None) -> None:
        self.dsn, self.label, self.model, self.view = dsn, label, model, view
        self.enabled = sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._after = 0  # only runs started after this one are ours

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        self._started = time.monotonic()
        if self.view is not None:
            try:
                self._conn = connect(self.dsn)
                row = self._conn.execute(
                    f"SELECT coalesce(max(run_id), 0) FROM pyrec.{self.view} WHERE model = %s",
                    [self.model],
                ).fetchone()
                self._after = int(row[0]) if row else 0
            except Exception:
                self._close()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._close()
        sys.stderr.write("\r\033[K")  # leave the terminal as it was: the result comes next
        sys.stderr.flush()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _state(self) -> tuple[str, float] | None:
        if self._conn is None:
            return None
        try:
            row = self._conn.execute(
                f"SELECT phase, percent FROM pyrec.{self.view} WHERE model = %s AND run_id > %s"
                " ORDER BY run_id DESC LIMIT 1",
                [self.model, self._after],
            ).fetchone()
        except psycopg.Error:
            self._close()
            return None
        return (str(row[0]), float(row[1])) if row else None

    def _loop(self) -> None:
        tick = 0
        while not self._stop.wait(0.25):
            state = self._state()
            seconds = time.monotonic() - self._started
            if state is None:
                line = f"{self.label} {_SPIN[tick % len(_SPIN)]}  {seconds:.1f} s"
            else:
                phase, percent = state
                done = int(_WIDTH * min(max(percent, 0.0), 100.0) / 100)
                bar = "#" * done + "-" * (_WIDTH - done)
                line = f"{self.label} [{bar}] {percent:3.0f}% {phase}  {seconds:.1f} s"
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
            tick += 1
