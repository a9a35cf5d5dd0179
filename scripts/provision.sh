#!/usr/bin/env bash
# Provision PostgreSQL $PG_MAJOR (default 15) with plpython3u, pg_cron and pgvector (idempotent).
#
# Two paths, chosen by what the machine's apt carries (docs/platforms.md):
#   packaged  the major is a Debian package here (bookworm: 15): Debian's server, plpython3u
#             and pg_cron; pgvector built from a Debian source package.
#   source    any other major: the server built with plpython3u (against /usr/bin/python3, so
#             the server imports the machine's numpy and scipy) from Debian's source package
#             into .build/pg<major>/, then pgvector and pg_cron built against it. A later run
#             finds the build there and skips it.
# Source packages come from Debian's source archives (trixie, then forky, then sid) through a
# private apt configuration: the machine's apt sources and lists stay untouched. Tarballs
# already in .build/sources/ or in $PYREC_SOURCES (named as Debian names them, e.g.
# pgvector_0.8.1.orig.tar.gz) are used first, so a machine without the archive can build too.
#
# Usage: scripts/provision.sh               provision $PG_MAJOR
#        scripts/provision.sh --pg-config   print the pg_config the major's path uses; changes nothing
# Exit status 3: a source this major needs is not offered by the archives (the message says
# which version was looked for and what to do); any other failure exits 1. pg_cron is not
# needed: when its source is not served, the major is provisioned without it (said so).
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/.build"
PREFIX="$BUILD/pg$PG_MAJOR"          # the source path's installation
SOURCES="$BUILD/sources"             # downloaded orig tarballs, kept for later builds
SUITES=(trixie forky sid)            # source archives searched, the most stable first
SERVER_PYTHON=/usr/bin/python3       # plpython3u's Python: Debian's, where numpy/scipy are
PACKAGED_PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config

say() { printf 'provision: %s\n' "$*"; }
die() { printf 'provision: %s\n' "$*" >&2; exit 1; }
unavailable() { printf 'provision: %s\n' "$*" >&2; exit 3; }

[[ "$PG_MAJOR" =~ ^[0-9]+$ ]] || die "PG_MAJOR must be a PostgreSQL major version such as 15 or 17, not '$PG_MAJOR'"

# The major's path: packaged when its server is installed or the machine's apt offers it.
packaged() {
  [ -x "$PACKAGED_PG_CONFIG" ] && return 0
  command -v apt-cache >/dev/null || return 1
  local candidate
  candidate=$(apt-cache policy "postgresql-$PG_MAJOR" 2>/dev/null | awk '/Candidate:/{print $2}')
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

if [ "${1:-}" = --pg-config ]; then
  if [ -x "$PREFIX/bin/pg_config" ] || ! packaged; then echo "$PREFIX/bin/pg_config"
  else echo "$PACKAGED_PG_CONFIG"; fi
  exit 0
fi

# The lowest versions that build against each major (their upstream changelogs); 0.8.0 is
# also pyrec's own minimum (HNSW iterative index scans).
pgvector_min() { case "$PG_MAJOR" in 1[3-7]) echo 0.8.0 ;; *) echo 0.8.1 ;; esac; }
pg_cron_min() {
  case "$PG_MAJOR" in 1[3-5]) echo 1.4.2 ;; 16) echo 1.6.0 ;; 17) echo 1.6.3 ;; *) echo 1.6.6 ;; esac
}

# Upstream version of a Debian version (no epoch, no revision): 1:17.12-0+deb13u1 -> 17.12.
upstream() { local v=${1#*:}; echo "${v%-*}"; }
version_ge() { dpkg --compare-versions "$1" ge "$2"; }

# --- the private apt configuration for Debian's source archives ------------------------------
APT_DIR="$BUILD/apt"
APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$APT_DIR/sources"
          -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache"
          -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt_ready=no
MIRROR=""                       # the Debian mirror searched, set by source_apt
trap 'rm -rf "$APT_DIR"' EXIT   # its lists are fetched afresh on each run that needs them
source_apt() {
  [ $apt_ready = yes ] && return 0
  rm -rf "$APT_DIR" && mkdir -p "$APT_DIR/sources" "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  # the mirror and key of the machine's own Debian source, so a local mirror keeps being used
  local src uris="http://deb.debian.org/debian" signed="/usr/share/keyrings/debian-archive-keyring.gpg"
  src=$(grep -l -E '^URIs: *https?://[^ ]*/debian/? *$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
  if [ -n "$src" ]; then
    uris=$(awk '/^URIs:/{print $2; exit}' "$src")
    signed=$(awk '/^Signed-By:/{print $2; exit}' "$src")
  fi
  MIRROR=${uris%/}
  printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$uris" "${SUITES[*]}" "$signed" > "$APT_DIR/sources/debian.sources"
  apt-get "${APT_OPTS[@]}" update -qq 2>"$APT_DIR/update.log" \
    || die "apt-get update of Debian's source archives (${SUITES[*]}) failed:
$(tail -n 5 "$APT_DIR/update.log")
fix: check that $uris is reachable, then run this again"
  apt_ready=yes
}

# "<version> <suite>" for each version of a source package the archives offer, in SUITES order.
offered() {
  local pkg=$1 suite
  for suite in "${SUITES[@]}"; do
    apt-cache "${APT_OPTS[@]}" madison "$pkg" 2>/dev/null \
      | awk -F'|' -v s=" $suite/" 'index($3, s) && $3 ~ /Sources/ {gsub(/ /, "", $2); print $2}' \
      | while read -r v; do echo "$v $suite"; done
  done
}

# The first HTTP error in apt's log $1 ("404  Not Found"), or a generic reason.
download_error() {
  grep -m1 -o '[0-9]\{3\} *[A-Za-z][A-Za-z ]*[a-z]' "$1" 2>/dev/null || echo 'download failed'
}

# --- earlier point releases, straight from the mirror's pool ---------------------------------
# A mirror can list a stable update in its index before its pool serves the files (seen for
# postgresql-17 17.12-0+deb13u1: index listed, every file 404), while the pool still holds the
# previous point releases. Those are tried, newest first, a bounded number of steps down.
POOL_STEPS=6

# Debian's pool directory of source package $1: pool/main/<first letter, or libX>/<pkg>.
pool_dir() { case "$1" in lib?*) echo "pool/main/${1:0:4}/$1" ;; *) echo "pool/main/${1:0:1}/$1" ;; esac; }

# Earlier point releases of Debian version $1 with the same Debian revision, newest first, at
# most POOL_STEPS, none below upstream version $2: 17.12-0+deb13u1 -> 17.11-0+deb13u1 ...
earlier_releases() {
  local v=${1#*:} min=$2 up rev="" head last n
  [[ "$v" == *-* ]] && rev="-${v##*-}"
  up=$(upstream "$1")
  [[ "$up" =~ ^(.*[^0-9])([0-9]+)$ ]] || return 0   # no trailing number to count down
  head=${BASH_REMATCH[1]}; last=$((10#${BASH_REMATCH[2]}))
  for ((n = last - 1; n >= 0 && n >= last - POOL_STEPS; n--)); do
    version_ge "$head$n" "$min" || break
    echo "$head$n$rev"
  done
}

# Download apt's way (the private configuration's proxy and options; no curl needed) URL $1 to
# file $2, apt's messages into log $3.
download() { /usr/lib/apt/apt-helper "${APT_OPTS[@]}" download-file "$1" "$2" >"$3" 2>&1; }

# POOL_FETCHED= the orig tarball of source package $1 at Debian version $2, downloaded from the
# mirror's pool into directory $3 with the .dsc that names it; else POOL_ERROR says why.
# The .dsc comes from the pool, not from the archive's signed index (which no longer lists this
# version), so nothing but the mirror vouches for it; the tarball must match the sha256 in the
# .dsc's Checksums-Sha256, which rules out a truncated or corrupt download.
POOL_FETCHED=""; POOL_ERROR=""
pool_fetch() {
  local pkg=$1 version=${2#*:} dir=$3 url dsc up line sha name
  url="$MIRROR/$(pool_dir "$pkg")"
  dsc="${pkg}_${version}.dsc"
  up=$(upstream "$version")
  if ! download "$url/${dsc//+/%2b}" "$dir/$dsc" "$dir.log"; then
    POOL_ERROR="$(download_error "$dir.log") (.dsc)"; return 1
  fi
  line=$(awk -v p="${pkg}_${up}.orig.tar." '/^Checksums-Sha256:/ {on = 1; next} /^[^ ]/ {on = 0}
           on && index($3, p) == 1 && $3 !~ /\.asc$/ {print $1, $3; exit}' "$dir/$dsc")
  if [ -z "$line" ]; then POOL_ERROR="its .dsc names no sha256 of an orig tarball"; return 1; fi
  sha=${line%% *}; name=${line#* }
  if ! download "$url/${name//+/%2b}" "$dir/$name" "$dir.log"; then
    POOL_ERROR="$(download_error "$dir.log") ($name)"; return 1
  fi
  if [ "$(sha256sum "$dir/$name" | awk '{print $1}')" != "$sha" ]; then
    POOL_ERROR="$name does not match the sha256 of its .dsc"; return 1
  fi
  POOL_FETCHED="$dir/$name"
}

# FETCHED= the path of an orig tarball of source package $1 at upstream version >= $2: one
# already in $PYREC_SOURCES or .build/sources (the highest), else the first the archives offer
# and serve, else the first earlier point release of an offered version the mirror's pool
# serves. (A variable, not output: the exits below must end the script, not a subshell.)
FETCHED=""
fetch_source() {
  local pkg=$1 min=$2 dir f v best="" best_v="" tried=() listed=() versions=()
  mkdir -p "$SOURCES"
  for dir in ${PYREC_SOURCES:+"$PYREC_SOURCES"} "$SOURCES"; do
    for f in "$dir/${pkg}"_*.orig.tar.*; do
      [ -f "$f" ] || continue
      v=${f##*/"${pkg}"_}; v=${v%.orig.tar.*}
      version_ge "$v" "$min" || continue
      if [ -z "$best_v" ] || version_ge "$v" "$best_v"; then best=$f; best_v=$v; fi
    done
  done
  if [ -n "$best" ]; then FETCHED=$best; return 0; fi

  local version suite up tmp
  source_apt
  while read -r version suite; do
    [ -n "$version" ] || continue
    listed+=("$version ($suite)")
    up=$(upstream "$version")
    version_ge "$up" "$min" || continue
    versions+=("$version")
    tmp="$SOURCES/download" && rm -rf "$tmp" && mkdir -p "$tmp"
    if (cd "$tmp" && apt-get "${APT_OPTS[@]}" source --download-only -qq "$pkg=$version" >"$tmp.log" 2>&1); then
      for f in "$tmp/${pkg}_${up}".orig.tar.*; do break; done
      if [ -f "$f" ]; then
        mv "$f" "$SOURCES/" && rm -rf "$tmp" "$tmp.log"
        FETCHED="$SOURCES/${f##*/}"; return 0
      fi
    fi
    tried+=("$version ($suite): $(download_error "$tmp.log")")
    rm -rf "$tmp"
  done < <(offered "$pkg")

  # None of the offered versions downloaded: earlier point releases from the same mirror's pool
  local earlier seen=" ${versions[*]:-} "
  for version in ${versions[@]+"${versions[@]}"}; do
    for earlier in $(earlier_releases "$version" "$min"); do
      [[ "$seen" == *" $earlier "* ]] && continue
      seen+="$earlier "
      tmp="$SOURCES/download" && rm -rf "$tmp" && mkdir -p "$tmp"
      if pool_fetch "$pkg" "$earlier" "$tmp"; then
        mv "$POOL_FETCHED" "$SOURCES/" && FETCHED="$SOURCES/${POOL_FETCHED##*/}"
        rm -rf "$tmp" "$tmp.log"
        say "$pkg: the archives list ${versions[*]} without serving it; took the earlier $earlier from the pool of $MIRROR (its .dsc from the pool, not from the signed index; ${FETCHED##*/} matches the .dsc's sha256)"
        return 0
      fi
      tried+=("$earlier (pool): $POOL_ERROR")
      rm -rf "$tmp"
    done
  done

  local what="${listed[*]:-none}"
  [ ${#tried[@]} -gt 0 ] && what="${what}; downloads failed: $(printf "%s; " "${tried[@]}" | sed "s/; $//")"
  local message="no source package $pkg at version $min or later, as PostgreSQL $PG_MAJOR needs: Debian's source archives (${SUITES[*]}) offer: $what
fix: put the upstream tarball of $pkg >= $min in .build/sources/ as ${pkg}_<version>.orig.tar.gz (or .bz2, .xz; or in a directory named by PYREC_SOURCES) and run this again, or wait until the archives serve it"
  if [ "${3:-}" = optional ]; then
    printf 'provision: %s\n' "$message" >&2
    return 1
  fi
  unavailable "$message"
}

# Extract tarball $1 into a fresh directory $2.
unpack() { rm -rf "$2" && mkdir -p "$2" && tar -xf "$1" -C "$2" --strip-components=1; }

# Build and install a PGXS extension from tarball $1 against $PG_CONFIG; $2 names it.
build_extension() {
  local tarball=$1 name=$2 src="$BUILD/$2-src" log="$BUILD/$2-build.log"
  unpack "$tarball" "$src"
  # OPTFLAGS="": pgvector's default -march=native would tie the build to this CPU
  if ! { make -C "$src" PG_CONFIG="$PG_CONFIG" OPTFLAGS="" && make -C "$src" PG_CONFIG="$PG_CONFIG" install; } >"$log" 2>&1; then
    die "building $name from ${tarball##*/} against $PG_CONFIG failed (log: $log):
$(tail -n 15 "$log")"
  fi
  rm -rf "$src" "$log"
}

# default_version of an installed extension, or nothing.
installed_version() {
  sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$("$PG_CONFIG" --sharedir)/extension/$1.control" 2>/dev/null || true
}

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root to $1. Without root, have these installed first:
  apt-get install ${*:2}
then run this again (as any user)."
  if ! command -v apt-get >/dev/null || [ ! -f /etc/debian_version ]; then
    die "this recipe needs Debian or Ubuntu (apt-get). Elsewhere install PostgreSQL $PG_MAJOR with
  plpython3u, pg_cron >= $(pg_cron_min), pgvector >= $(pgvector_min) and numpy/scipy for the server's Python 3."
  fi
}

apt_install() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root "install Debian packages" "${missing[@]}"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed: fix the machine's apt sources, then run this again"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed (see apt's messages above)"
}

ensure_pgvector() {
  local min have
  min=$(pgvector_min); have=$(installed_version vector)
  if [ -n "$have" ] && version_ge "$have" "$min"; then say "pgvector $have present"; return 0; fi
  fetch_source pgvector "$min"
  say "building pgvector from ${FETCHED##*/}"
  build_extension "$FETCHED" pgvector
  say "pgvector $(installed_version vector) installed into $("$PG_CONFIG" --sharedir)/extension"
}

COMMON=(libopenblas0-pthread python3-numpy python3-scipy
        chromium)  # headless, for tests/integration/test_report.py (renders the HTML report)

if packaged; then
  # --- packaged: Debian's server, plpython3u and pg_cron ---------------------------------------
  PG_CONFIG=$PACKAGED_PG_CONFIG
  apt_install "postgresql-$PG_MAJOR" "postgresql-plpython3-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" \
    "postgresql-$PG_MAJOR-cron" "${COMMON[@]}" dpkg-dev make gcc
  say "PostgreSQL $PG_MAJOR, plpython3u and pg_cron from Debian's packages"
  ensure_pgvector
  say "done: PostgreSQL $PG_MAJOR ($PG_CONFIG)"
  exit 0
fi

# --- source: the server built from Debian's source package into .build/pg<major>/ -----------
PG_CONFIG="$PREFIX/bin/pg_config"
# bison and flex: tarballs of 17 and later no longer ship generated parsers
apt_install gcc make dpkg-dev pkg-config bison flex perl libpython3-dev zlib1g-dev "${COMMON[@]}"

if id postgres >/dev/null 2>&1; then :; elif [ "$(id -u)" = 0 ]; then
  # the account the packaged server creates; the throwaway clusters run as it under root
  say "creating the postgres system user (initdb and the server refuse to run as root)"
  useradd --system --user-group --home-dir /var/lib/postgresql --create-home --shell /bin/bash postgres \
    || die "useradd postgres failed: create a 'postgres' system user, then run this again"
fi

# the throwaway clusters run as postgres under root: it must reach the binaries in this checkout
mkdir -p "$BUILD"
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$BUILD"; then
  die "the postgres user cannot reach $BUILD (a parent directory is closed to others, as /root is)
fix: clone the repository where others may enter (e.g. under /srv or /opt), or chmod o+x its parent directories"
fi

# What the build is made of: a build made by another recipe is made again. No ICU, no readline:
# the throwaway clusters use the C locale, and psql is only scripted here. world-bin: the
# server, plpython3u and contrib (auto_explain, pg_stat_statements, ...), as Debian ships them.
CONFIGURE=(--with-python PYTHON="$SERVER_PYTHON" --without-icu --without-readline)
RECIPE="configure ${CONFIGURE[*]}; make world-bin"
if [ -x "$PG_CONFIG" ] && [ "$(cat "$PREFIX/.complete" 2>/dev/null)" = "$RECIPE" ]; then
  say "PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}') with plpython3u present in $PREFIX"
else
  rm -rf "$PREFIX"
  fetch_source "postgresql-$PG_MAJOR" "$PG_MAJOR"
  src="$BUILD/pg$PG_MAJOR-src"; log="$BUILD/pg$PG_MAJOR-build.log"
  say "building PostgreSQL from ${FETCHED##*/} into $PREFIX (several minutes; log: $log)"
  unpack "$FETCHED" "$src"
  # Under `make postgres` MAKELEVEL is 1, and PostgreSQL then skips generating its headers
  # before the parallel build (that is left to a top-level make): the build must look top-level.
  unset MAKELEVEL MAKEFLAGS MFLAGS
  if ! (cd "$src" && ./configure --prefix="$PREFIX" "${CONFIGURE[@]}" \
          && make -j"$(nproc)" world-bin && make install-world-bin) >"$log" 2>&1; then
    die "building PostgreSQL $PG_MAJOR failed (log: $log):
$(tail -n 15 "$log")
fix: install what the log says is missing (Debian's build-dependencies of postgresql-$PG_MAJOR), then run this again"
  fi
  [ -f "$("$PG_CONFIG" --pkglibdir)/plpython3.so" ] || die "PostgreSQL $PG_MAJOR was built without plpython3u (log: $log)"
  rm -rf "$src" "$log"
  echo "$RECIPE" > "$PREFIX/.complete"
  say "PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}') installed into $PREFIX"
fi

ensure_pgvector
if [ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ]; then
  say "pg_cron $(installed_version pg_cron) present"
elif fetch_source pg-cron "$(pg_cron_min)" optional; then
  say "building pg_cron from ${FETCHED##*/}"
  build_extension "$FETCHED" pg_cron
  say "pg_cron installed into $("$PG_CONFIG" --pkglibdir)"
else
  # pg_cron only runs scheduled trainings: everything else works without it, and the tests
  # of schedules skip, saying why (as on the embedded path). A later run builds it once its
  # source is served or put in .build/sources/.
  say "pg_cron left out (its source is not served, above): pyrec.schedule_training will say it needs pg_cron, and the tests of schedules skip"
fi
say "done: PostgreSQL $PG_MAJOR ($PG_CONFIG)"
