#!/usr/bin/env bash
# Provision PostgreSQL 15 + plpython3u + pg_cron + pgvector 0.8.0 on Debian/Ubuntu (idempotent).
set -euo pipefail

PG_MAJOR=15
PGVECTOR_VERSION=0.8.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/.build"
PACKAGES=(postgresql-$PG_MAJOR postgresql-plpython3-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
          postgresql-$PG_MAJOR-cron libopenblas0-pthread python3-numpy python3-scipy
          dpkg-dev make gcc
          chromium)  # headless, for tests/integration/test_report.py (renders the HTML report)

say() { printf 'provision: %s\n' "$*"; }
die() { printf 'provision: %s\n' "$*" >&2; exit 1; }

PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
else
  missing=("${PACKAGES[@]}")
fi
have_vector=no
[ -x "$PG_CONFIG" ] && [ -f "$("$PG_CONFIG" --sharedir)/extension/vector--$PGVECTOR_VERSION.sql" ] \
  && have_vector=yes
if [ ${#missing[@]} -eq 0 ] && [ $have_vector = yes ]; then
  say "PostgreSQL $PG_MAJOR, plpython3u, pg_cron, numpy/scipy and pgvector $PGVECTOR_VERSION present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  die "must run as root (it installs Debian packages). Without root, install these yourself:
  apt-get install ${PACKAGES[*]}
  pgvector $PGVECTOR_VERSION (https://github.com/pgvector/pgvector, make && make install)
then run 'make ext' to install the pyrec extension files."
fi
if ! command -v apt-get >/dev/null || [ ! -f /etc/debian_version ]; then
  die "this recipe needs Debian or Ubuntu (apt-get). Elsewhere install PostgreSQL $PG_MAJOR with
  plpython3u, pg_cron, pgvector >= $PGVECTOR_VERSION, and numpy/scipy for the server's Python 3."
fi

if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

SHAREDIR="$($PG_CONFIG --sharedir)"
if [ -f "$SHAREDIR/extension/vector--$PGVECTOR_VERSION.sql" ]; then
  say "pgvector $PGVECTOR_VERSION present"
else
  # pgvector is packaged in trixie, not bookworm: fetch its Debian source package with a
  # private apt configuration (the machine's sources and lists stay untouched).
  say "building pgvector $PGVECTOR_VERSION from Debian trixie's source package"
  apt_dir="$BUILD/apt-trixie"
  rm -rf "$apt_dir" && mkdir -p "$apt_dir/lists/partial" "$BUILD/pgvector"
  src=$(grep -l -E '^URIs: *https?://[^ ]*/debian/? *$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
  uris="http://deb.debian.org/debian"; signed="/usr/share/keyrings/debian-archive-keyring.gpg"
  if [ -n "$src" ]; then
    uris=$(awk '/^URIs:/{print $2; exit}' "$src")
    signed=$(awk '/^Signed-By:/{print $2; exit}' "$src")
  fi
  printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' \
    "$uris" "$signed" > "$apt_dir/trixie.sources"
  apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$BUILD/pgvector" && apt-get "${apt_opts[@]}" source --download-only -qq pgvector)
  tarball=$(ls "$BUILD/pgvector"/pgvector_${PGVECTOR_VERSION}.orig.tar.gz 2>/dev/null) \
    || die "trixie no longer carries pgvector $PGVECTOR_VERSION; found: $(ls "$BUILD/pgvector")"
  rm -rf "$BUILD/pgvector/src" && mkdir -p "$BUILD/pgvector/src"
  tar -xzf "$tarball" -C "$BUILD/pgvector/src" --strip-components=1
  make -s -C "$BUILD/pgvector/src" PG_CONFIG=$PG_CONFIG OPTFLAGS="" >/dev/null
  make -s -C "$BUILD/pgvector/src" PG_CONFIG=$PG_CONFIG install >/dev/null
  rm -rf "$apt_dir"
  say "pgvector $PGVECTOR_VERSION installed into $SHAREDIR/extension"
fi
say "done"
