#!/usr/bin/env bash
# Build the Debian packages a DBA installs on Debian 12 (bookworm) for PostgreSQL $PG_MAJOR (15):
#
#   postgresql-15-pyrec_<version>-1_amd64.deb
#       the extension's files (pyrec.control, pyrec--<version>.sql, the released install and
#       upgrade scripts of migrations/, as `make -C sql install` lays them out) and pyrec_pg's
#       server-side layers (as `make install`: no cli, dev, integrations) with the pinned wheels
#       of requirements-server.txt for the server's Python 3.11, in a private directory
#       /usr/lib/postgresql-15-pyrec/python3.11 that a .pth file puts on sys.path inside
#       PostgreSQL server processes only (docs/platforms.md, "Debian package", says why).
#       numpy and scipy are compiled wheels: the package is Architecture: amd64.
#   postgresql-15-pgvector_<debian version>~pyrec12+1_amd64.deb
#       pyrec needs pgvector >= 0.8.0 and bookworm carries no pgvector package: Debian's own
#       source package (trixie, forky, sid: the first that serves one) rebuilt here unchanged
#       with its own debian/ packaging, with a changelog entry whose version sorts below the
#       source's, so Debian's package replaces it on a dist-upgrade.
#
# Both go to .build/deb/ (PYREC_DEB_OUT names another directory). A second run finds each .deb
# with the stamp of what it was built from and does nothing; a change to any input (pyrec_pg,
# sql, migrations, requirements-server.txt, packaging/deb, this script) rebuilds the pyrec
# package only. The pyrec package is reproducible: the same inputs give the same bytes (file
# times are the last commit of those inputs, owners root, modes 644/755, .pyc by content hash).
#
# Usage: scripts/build_deb.sh                 both packages
#        scripts/build_deb.sh --no-pgvector   only pyrec's (pgvector >= 0.8.0 comes from elsewhere,
#                                             e.g. apt.postgresql.org's postgresql-15-pgvector)
# Needs root the first time only, to apt-get install debhelper and postgresql-server-dev-all
# (pgvector's build-dependencies); pyrec's package is built with dpkg-deb as any user.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT=${PYREC_DEB_OUT:-$ROOT/.build/deb}
WORK="$OUT/work"                        # staging trees and build logs, removed after each build
PACKAGING="$ROOT/packaging/deb"
SERVER_PY=${SERVER_PY:-/usr/bin/python3}   # plpython3u's Python: the one the wheels are for
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config

messages() {
  say() { printf 'build_deb: %s\n' "$*"; }
  die() { printf 'build_deb: %s\n' "$*" >&2; exit 1; }
}
messages

with_pgvector=yes
case "${1:-}" in
  "") ;;
  --no-pgvector) with_pgvector=no ;;
  *) die "unknown argument '$1' (usage: scripts/build_deb.sh [--no-pgvector])" ;;
esac

# --- what the machine must have ---------------------------------------------------------------
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this builds Debian packages on Debian or Ubuntu (apt-get install dpkg-dev)"
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found: the packages are built against Debian's own PostgreSQL $PG_MAJOR (bookworm: 15)
fix: make postgres (or apt-get install postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR); a major Debian does not package here (built from source into .build/) has no .deb: use make install"
[ -x "$SERVER_PY" ] || die "$SERVER_PY not found: the server's Python (plpython3u's), which the wheels are built for"
PY=$("$SERVER_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ARCH=$(dpkg --print-architecture)
[ "$ARCH" = amd64 ] || die "this builds for amd64 (the manylinux x86_64 wheels of numpy and scipy), not $ARCH"
# pip of the project's virtualenv (make venv), else the server Python's
if [ -x "$ROOT/.venv/bin/pip" ]; then PIP=("$ROOT/.venv/bin/pip")
elif "$SERVER_PY" -m pip --version >/dev/null 2>&1; then PIP=("$SERVER_PY" -m pip)
else die "no pip to fetch the pinned wheels with: run 'make venv' (or apt-get install python3-pip)"; fi

mkdir -p "$OUT"
trap 'rm -rf "$WORK" "${APT_DIR:-/nonexistent}"' EXIT
. /etc/os-release
CODENAME=${VERSION_CODENAME:-unknown}

# --- postgresql-15-pgvector: Debian's source package, rebuilt for this release ----------------
# provision.sh's functions (its private apt configuration for Debian's source archives, the
# versions they offer, apt_install, pgvector's minimum per major): everything before its
# provisioning body, which starts at "COMMON=(". Sourced in a function so its positional
# parameters (--pg-config) are empty.
load_provision() {
  local defs
  defs=$(sed '/^COMMON=(/,$d' "$ROOT/scripts/provision.sh")
  # shellcheck disable=SC1090
  source <(printf '%s\n' "$defs")
  declare -F source_apt offered upstream version_ge pgvector_min apt_install >/dev/null \
    || die "scripts/provision.sh no longer defines source_apt, offered, upstream, version_ge, pgvector_min and apt_install before 'COMMON=(': update load_provision in $0"
  trap 'rm -rf "$WORK" "$APT_DIR"' EXIT   # provision.sh's trap removed only its apt lists
  messages                                 # its say and die replaced ours
}

# DSC= the .dsc of Debian's pgvector source package at upstream version >= $1: one kept in
# .build/sources/ (the highest), else the first the archives offer and serve, downloaded with
# its orig tarball and debian/ tarball into .build/sources/ (where provision.sh finds the orig).
DSC=""
find_pgvector_source() {
  local min=$1 f v best_v="" version suite up tmp tried=() listed=()
  mkdir -p "$SOURCES"
  for f in "$SOURCES"/pgvector_*.dsc; do
    [ -f "$f" ] || continue
    v=${f##*/pgvector_}; v=${v%.dsc}
    version_ge "$(upstream "$v")" "$min" || continue
    if [ -z "$best_v" ] || version_ge "$v" "$best_v"; then DSC=$f; best_v=$v; fi
  done
  [ -n "$DSC" ] && return 0
  source_apt
  while read -r version suite; do
    [ -n "$version" ] || continue
    listed+=("$version ($suite)")
    up=$(upstream "$version")
    version_ge "$up" "$min" || continue
    tmp="$SOURCES/deb-download" && rm -rf "$tmp" && mkdir -p "$tmp"
    if (cd "$tmp" && apt-get "${APT_OPTS[@]}" source --download-only -qq "pgvector=$version") >"$tmp.log" 2>&1 \
        && f=$(ls "$tmp"/pgvector_*.dsc 2>/dev/null | head -n1) && [ -n "$f" ]; then
      mv -f "$tmp"/* "$SOURCES/" && rm -rf "$tmp" "$tmp.log"
      DSC="$SOURCES/${f##*/}"; return 0
    fi
    tried+=("$version ($suite): $(grep -m1 -o '[0-9]\{3\} *[A-Za-z][A-Za-z ]*[a-z]' "$tmp.log" 2>/dev/null || echo 'download failed')")
    rm -rf "$tmp" "$tmp.log"
  done < <(offered pgvector)
  local what="${listed[*]:-none}"
  [ ${#tried[@]} -gt 0 ] && what="${what}; downloads failed: $(printf "%s; " "${tried[@]}" | sed "s/; $//")"
  die "no Debian source package of pgvector at version $min or later: the source archives (${SUITES[*]}) offer: $what
fix: put Debian's pgvector_<version>.dsc, .orig.tar.* and .debian.tar.* (>= $min) in .build/sources/ and run this again; or build only pyrec's package (--no-pgvector) and install postgresql-$PG_MAJOR-pgvector >= $min from apt.postgresql.org"
}

build_pgvector() {
  load_provision
  local min recipe stamp="$OUT/.pgvector-$PG_MAJOR.stamp" existing
  min=$(pgvector_min)
  # what the .deb is made of; a .deb made by another recipe is made again
  recipe="pgvector >= $min, rebuilt for $CODENAME, PostgreSQL $PG_MAJOR; $(sha256sum "$PACKAGING/pgvector.changelog.in" | cut -c1-16)"
  existing=$(ls "$OUT"/postgresql-"$PG_MAJOR"-pgvector_*_"$ARCH".deb 2>/dev/null | head -n1 || true)
  if [ -n "$existing" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ]; then
    say "${existing##*/} present"
    return 0
  fi
  rm -f "$OUT"/postgresql-"$PG_MAJOR"-pgvector_*.deb "$stamp"

  find_pgvector_source "$min"
  local source_version version src log="$WORK/pgvector-build.log" date
  source_version=${DSC##*/pgvector_}; source_version=${source_version%.dsc}
  # ~pyrec<release>+1: below Debian's own $source_version, above anything older
  version="${source_version}~pyrec${VERSION_ID:-0}+1"
  # debhelper and pg_buildext (postgresql-server-dev-all) build it; postgresql-all and
  # architecture-is-64-bit, also listed, serve its tests (skipped: nocheck) and 32-bit profiles
  # (absent from bookworm), hence dpkg-buildpackage -d below
  apt_install debhelper postgresql-server-dev-all "postgresql-server-dev-$PG_MAJOR"
  say "building postgresql-$PG_MAJOR-pgvector $version from ${DSC##*/}"
  rm -rf "$WORK/pgvector" && mkdir -p "$WORK/pgvector"
  src="$WORK/pgvector/pgvector-$(upstream "$source_version")"
  dpkg-source -x "$DSC" "$src" >"$WORK/pgvector-source.log" 2>&1 \
    || die "dpkg-source -x ${DSC##*/} failed:
$(tail -n 5 "$WORK/pgvector-source.log")
fix: remove .build/sources/pgvector_* and run this again (they are downloaded afresh)"
  # the new entry carries the date of the source's last one: SOURCE_DATE_EPOCH, and with it
  # the .deb, depend on the source alone
  date=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Date)
  { sed -e "s/@VERSION@/$version/; s/@SOURCE_VERSION@/$source_version/g; s/@CODENAME@/$CODENAME/g" \
        -e "s/@DEBIAN_VERSION@/${VERSION_ID:-?}/; s/@PG_MAJOR@/$PG_MAJOR/; s/@DATE@/$date/" \
        "$PACKAGING/pgvector.changelog.in"
    cat "$src/debian/changelog"; } > "$src/debian/changelog.new"
  mv "$src/debian/changelog.new" "$src/debian/changelog"
  # debian/control lists the packages of the majors the source's release supports (trixie:
  # 17); regenerate it for this one
  if ! (cd "$src" && export PG_SUPPORTED_VERSIONS=$PG_MAJOR \
          && pg_buildext updatecontrol \
          && DEB_BUILD_OPTIONS="nocheck noddebs" DEB_BUILD_PROFILES=nocheck \
             dpkg-buildpackage -b -uc -us -d) >"$log" 2>&1; then
    cp "$log" "$OUT/pgvector-build.log"
    die "building postgresql-$PG_MAJOR-pgvector from ${DSC##*/} failed (log: $OUT/pgvector-build.log):
$(tail -n 15 "$log")"
  fi
  mv "$WORK"/pgvector/postgresql-"$PG_MAJOR"-pgvector_"$version"_"$ARCH".deb "$OUT/" \
    || die "dpkg-buildpackage made no postgresql-$PG_MAJOR-pgvector_${version}_$ARCH.deb: $(ls "$WORK/pgvector")"
  rm -rf "$WORK/pgvector"
  echo "$recipe" > "$stamp"
  say "built postgresql-$PG_MAJOR-pgvector_${version}_$ARCH.deb"
}

# --- postgresql-15-pyrec ----------------------------------------------------------------------
PYDIR=/usr/lib/postgresql-$PG_MAJOR-pyrec/python$PY   # the private directory of the Python part
# as `make install` (the Makefile passes its SERVER_EXCLUDES): the server never imports them
read -r -a SERVER_EXCLUDES <<< "${SERVER_EXCLUDES:-cli dev integrations}"
PKG=postgresql-$PG_MAJOR-pyrec

# The files the package is made of, tracked or new (not ignored), one a line.
inputs() {
  (cd "$ROOT" && git ls-files -co --exclude-standard -- pyrec_pg sql migrations requirements-server.txt \
     packaging/deb scripts/build_deb.sh | LC_ALL=C sort -u | while read -r f; do if [ -f "$f" ] && [ ! -L "$f" ]; then echo "$f"; fi; done)
}

build_pyrec() {
  local version debver deb stamp="$OUT/.pyrec-$PG_MAJOR.stamp" recipe stage epoch files
  version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/pyrec_pg/__init__.py" | head -n1)
  [ -n "$version" ] || die "no __version__ = \"...\" line in pyrec_pg/__init__.py"
  debver="$version-1"
  deb="$OUT/${PKG}_${debver}_$ARCH.deb"
  files=$(inputs)
  recipe="$debver $PY $("$PG_CONFIG" --version) ${SERVER_EXCLUDES[*]} $(cd "$ROOT" && echo "$files" | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -c1-32)"
  if [ -f "$deb" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ]; then
    say "${deb##*/} present (its inputs are unchanged)"
    return 0
  fi
  rm -f "$OUT/${PKG}"_*.deb "$stamp"
  say "building ${deb##*/}"
  local t0=$SECONDS
  stage="$WORK/pyrec"
  rm -rf "$stage" && mkdir -p "$stage/DEBIAN" "$stage$PYDIR"

  # the extension's files, as `make ext` installs them
  make -s -C "$ROOT/sql" PG_CONFIG="$PG_CONFIG" DESTDIR="$stage" install >"$WORK/sql.log" 2>&1 \
    || die "make -C sql install DESTDIR=... failed: $(tail -n 10 "$WORK/sql.log")"
  [ -f "$stage$("$PG_CONFIG" --sharedir)/extension/pyrec--$version.sql" ] \
    || die "sql/ installed no pyrec--$version.sql: does sql/pyrec.control's default_version match pyrec_pg/__init__.py's $version?"

  # pyrec_pg's server-side layers: the modules setuptools packages, without SERVER_EXCLUDES, and
  # its package data (pyproject.toml: py.typed, pyrec_pg/sql -> ../sql's Makefile, control, sources)
  local f excl
  while read -r f; do
    case "$f" in pyrec_pg/*.py|pyrec_pg/py.typed) ;; *) continue ;; esac
    excl=no
    for d in "${SERVER_EXCLUDES[@]}"; do case "$f" in pyrec_pg/"$d"/*) excl=yes ;; esac; done
    if [ $excl = no ]; then install -D -m 644 "$ROOT/$f" "$stage$PYDIR/$f"; fi
  done <<< "$files"
  while read -r f; do
    case "$f" in sql/Makefile|sql/pyrec.control|sql/src/*/*.sql|sql/managed/*/*.sql)
      install -D -m 644 "$ROOT/$f" "$stage$PYDIR/pyrec_pg/$f" ;; esac
  done <<< "$files"

  # the pinned wheels for the server's Python (binary wheels only: nothing compiled here), kept
  # in .build/deb/wheels; unpacked as pip would, without the console scripts (the server runs none)
  local pins pyver=${PY/./}
  pins=$(grep -v '^ *#' "$ROOT/requirements-server.txt" | sed '/^ *$/d')
  "${PIP[@]}" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version "$PY" --implementation cp --abi "cp$pyver" \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$OUT/wheels" -r "$ROOT/requirements-server.txt" >"$WORK/pip.log" 2>&1 \
    || die "pip download of requirements-server.txt's wheels for CPython $PY (manylinux x86_64) failed:
$(grep -v '^WARNING: Location' "$WORK/pip.log" | tail -n 8)
fix: check that PyPI is reachable and that every pin has a binary wheel for CPython $PY"
  local name ver wheel
  while read -r name ver; do
    # a wheel's file name spells the project with underscores, in any case
    wheel=$(ls "$OUT/wheels" | grep -i "^$(echo "$name" | tr -- '-.' '__')-$ver-" | grep '\.whl$' | head -n1 || true)
    [ -n "$wheel" ] || die "no wheel of $name==$ver in $OUT/wheels after pip download (log: $(cat "$WORK/pip.log"))"
    "$SERVER_PY" - "$OUT/wheels/$wheel" "$stage$PYDIR" <<'PY'
import os, shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(target)
# <name>.data/{purelib,platlib} go beside the modules; scripts, headers and data stay out
for entry in os.listdir(target):
    if entry.endswith(".data") and os.path.isdir(os.path.join(target, entry)):
        for scheme in ("purelib", "platlib"):
            src = os.path.join(target, entry, scheme)
            if os.path.isdir(src):
                shutil.copytree(src, target, dirs_exist_ok=True)
        shutil.rmtree(os.path.join(target, entry))
PY
  done < <(echo "$pins" | sed -n 's/^\([A-Za-z0-9_.-]*\)==\([^ ;]*\).*/\1 \2/p')

  # file times: the last commit of the inputs, so the same inputs give the same package
  epoch=$(cd "$ROOT" && git log -1 --format=%ct -- pyrec_pg sql migrations requirements-server.txt packaging/deb scripts/build_deb.sh 2>/dev/null || true)
  export SOURCE_DATE_EPOCH=${epoch:-$(git -C "$ROOT" log -1 --format=%ct)}

  # byte-compiled once here: the server's user cannot write __pycache__ under /usr, so without
  # them every new session would compile numpy and scipy again. Checked by content hash (stable
  # bytes, and never stale); the paths recorded are the installed ones.
  say "staged in $((SECONDS - t0)) s"; t0=$SECONDS
  "$SERVER_PY" -m compileall -q -j 0 --invalidation-mode checked-hash -s "$stage" -p / "$stage$PYDIR" >"$WORK/compile.log" 2>&1 \
    || die "compileall with $SERVER_PY failed: $(tail -n 10 "$WORK/compile.log")"

  say "byte-compiled in $((SECONDS - t0)) s"; t0=$SECONDS
  # the .pth in Debian's dist-packages that puts PYDIR on the server's sys.path
  mkdir -p "$stage/usr/lib/python3/dist-packages"
  sed -e "s|@PG_MAJOR@|$PG_MAJOR|g; s|@PYDIR@|$PYDIR|g; s|@PY@|$PY|g; s|@PY_TUPLE@|${PY/./, }|g" \
    "$PACKAGING/pyrec.pth.in" > "$stage/usr/lib/python3/dist-packages/$PKG.pth"

  # copyright: pyrec's licence and each bundled distribution's, from its own metadata
  local doc="$stage/usr/share/doc/$PKG"
  mkdir -p "$doc"
  "$SERVER_PY" - "$stage$PYDIR" "$version" > "$doc/copyright" <<'PY'
import email, glob, os, sys
target, version = sys.argv[1], sys.argv[2]
print("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
print("Upstream-Name: pyrec_pg\n")
print("Files: *\nCopyright: pyrec_pg maintainers\nLicense: Apache-2.0")
print(" On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n")
for meta in sorted(glob.glob(os.path.join(target, "*.dist-info", "METADATA"))):
    with open(meta, encoding="utf-8") as f:
        m = email.message_from_file(f)
    lic = m.get("License-Expression") or (m.get("License") or "").split("\n")[0].strip()
    if not lic or len(lic) > 60:
        lic = "; ".join(c.split("::")[-1].strip() for c in m.get_all("Classifier", []) if c.startswith("License ::")) or "see its dist-info"
    d = os.path.dirname(meta)
    print("Files: %s (bundled %s %s, its dist-info has the licence texts)" % (
        os.path.join(target[target.index("/usr/"):], os.path.basename(d)), m["Name"], m["Version"]))
    print("License: %s\n" % lic)
PY

  # owners root (dpkg-deb --root-owner-group), modes 755/644 (nothing here is run as a program;
  # shared objects are 644 as Debian ships them), one time for every file
  find "$stage" -type d -exec chmod 755 {} +
  find "$stage" -type f -exec chmod 644 {} +
  (cd "$stage" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
  local size pinned
  size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
  pinned=$(echo "$pins" | sed 's/ *#.*//' | paste -sd' ' | sed 's/ /, /g')
  sed -e "s|@PG_MAJOR@|$PG_MAJOR|g; s|@VERSION@|$debver|; s|@ARCH@|$ARCH|; s|@INSTALLED_SIZE@|$size|" \
      -e "s|@PINNED@|$pinned|; s|@PY@|$PY|; s|@PYDIR@|$PYDIR|" "$PACKAGING/control.in" > "$stage/DEBIAN/control"
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

  # zstd: 6 s for 67 MB here, where xz took 140 s for 49 MB (numpy and scipy are most of it);
  # dpkg reads zstd since 1.21.18 (bookworm). dpkg-deb sorts the members by name.
  dpkg-deb --root-owner-group -Zzstd --build "$stage" "$deb.tmp" >/dev/null \
    || die "dpkg-deb --build failed"
  mv "$deb.tmp" "$deb"
  say "dpkg-deb --build in $((SECONDS - t0)) s"
  rm -rf "$stage"
  echo "$recipe" > "$stamp"
  say "built ${deb##*/} ($(du -k "$deb" | cut -f1) KiB, $size KiB installed)"
}

if [ $with_pgvector = yes ]; then build_pgvector; fi
build_pyrec
ls -1 "$OUT"/*.deb | sed 's/^/build_deb: /'
