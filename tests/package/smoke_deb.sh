#!/usr/bin/env bash
# Smoke test of the Debian packages of scripts/build_deb.sh, as a DBA uses them: apt-get
# installs them on this machine, pg_createcluster makes a Debian cluster, the postgres user
# runs CREATE EXTENSION pyrec CASCADE, trains a model on a few hundred synthetic interactions
# and asks for recommendations with a filter; pyrec.version() must report the server's major
# and a pyrec_pg and numpy imported from the package's directory (not a PYTHONPATH, not
# .build/server-site, not /usr/local, not Debian's python3-numpy). Then the cluster is dropped,
# the packages purged, and the machine left as it was found: files the packages replaced
# without owning them (the extension files `make ext` and provision.sh's pgvector build
# installed) are put back, so a later `make test` finds them.
#
# Usage (root): tests/package/smoke_deb.sh [.build/deb/postgresql-15-pgvector_*.deb] .build/deb/postgresql-15-pyrec_*.deb
#   without arguments: the .debs in .build/deb/ (scripts/build_deb.sh puts them there)
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
CLUSTER=pyrecdeb
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYDIR=/usr/lib/postgresql-$PG_MAJOR-pyrec/python3.11
start=$SECONDS

say() { printf 'smoke_deb: %s\n' "$*"; }
die() { printf 'smoke_deb: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it apt-get installs and purges packages and creates a cluster)"
command -v pg_createcluster >/dev/null || die "pg_createcluster not found: apt-get install postgresql-common postgresql-$PG_MAJOR"

debs=("$@")
if [ ${#debs[@]} = 0 ]; then
  shopt -s nullglob
  debs=("$ROOT"/.build/deb/postgresql-"$PG_MAJOR"-pgvector_*.deb "$ROOT"/.build/deb/postgresql-"$PG_MAJOR"-pyrec_*.deb)
  shopt -u nullglob
fi
[ ${#debs[@]} -gt 0 ] || die "no .deb given and none in .build/deb/: run scripts/build_deb.sh (make deb) first"
pkgs=()
for deb in "${debs[@]}"; do
  [ -f "$deb" ] || die "$deb: no such file"
  pkgs+=("$(dpkg-deb -f "$deb" Package)")
done
printf '%s\n' "${pkgs[@]}" | grep -qx "postgresql-$PG_MAJOR-pyrec" || die "no postgresql-$PG_MAJOR-pyrec among ${debs[*]}"

# The test purges what it installs: a package already installed here (by a DBA, or an earlier
# run that did not finish) is not its to remove.
for p in "${pkgs[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    die "$p is already installed here and this test would purge it: apt-get purge $p, then run this again"
  fi
done
if pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$PG_MAJOR $CLUSTER"; then
  die "a cluster $PG_MAJOR/$CLUSTER exists (an earlier run that did not finish?): pg_dropcluster --stop $PG_MAJOR $CLUSTER, then run this again"
fi

# Files the packages carry that are on disk and owned by no package: dpkg replaces them
# silently and the purge removes them; keep a copy to put back.
backup=$(mktemp -d /tmp/smoke_deb.XXXXXX)
mkdir "$backup/files"
for deb in "${debs[@]}"; do
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./|/|p' | grep -v '/$' | while read -r path; do
    if [ -f "$path" ]; then echo "$path"; fi
  done
done | LC_ALL=C sort -u > "$backup/present"
# those no package owns (one dpkg-query for all: "pkg[, pkg]: /path" for each owned one)
if [ -s "$backup/present" ]; then
  xargs -d '\n' dpkg-query -S < "$backup/present" 2>/dev/null | sed 's/^[^:]*: //' | LC_ALL=C sort -u > "$backup/owned" || true
  LC_ALL=C comm -23 "$backup/present" "$backup/owned" | sed 's|^/||' > "$backup/list"
else
  : > "$backup/list"
fi
kept=$(grep -c . "$backup/list" || true)
if [ "$kept" -gt 0 ]; then
  tar -C / -cf - -T "$backup/list" | tar -C "$backup/files" -xpf - \
    || die "copying the unowned files the packages replace into $backup failed"
  (cd / && xargs -d '\n' sha256sum < "$backup/list") > "$backup/sha256sums"
fi
say "kept $kept unowned files the packages replace (restored after the purge)"

installed=no
cleanup() {
  local rc=$?
  set +e
  if pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$PG_MAJOR $CLUSTER"; then
    pg_dropcluster --stop "$PG_MAJOR" "$CLUSTER" || echo "smoke_deb: pg_dropcluster $PG_MAJOR $CLUSTER failed" >&2
  fi
  if [ $installed = yes ]; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${pkgs[@]}" >/dev/null \
      || echo "smoke_deb: apt-get purge ${pkgs[*]} failed" >&2
  fi
  # what the packages replaced, back where it was, with its modes and times (directories the
  # purge removed are made again; those that stayed keep theirs)
  if [ "$kept" = 0 ] || { tar -C "$backup/files" -cf - . | tar -C / -xpf - --no-overwrite-dir \
      && (cd / && sha256sum --quiet -c "$backup/sha256sums"); }; then
    rm -rf "$backup"
  else
    echo "smoke_deb: restoring the files kept in $backup/files failed: copy them back to / by hand" >&2
    rc=1
  fi
  [ $rc = 0 ] && say "passed in $((SECONDS - start)) s (cluster dropped, ${pkgs[*]} purged, $kept files restored)"
  exit $rc
}
trap cleanup EXIT

t=$SECONDS
apt_debs=()
for deb in "${debs[@]}"; do apt_debs+=("$(realpath "$deb")"); done
installed=yes
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_debs[@]}" >/tmp/smoke_deb.apt.log 2>&1 \
  || { cat /tmp/smoke_deb.apt.log >&2; die "apt-get install ${apt_debs[*]} failed (above)"; }
rm -f /tmp/smoke_deb.apt.log
for p in "${pkgs[@]}"; do say "installed $p $(dpkg-query -W -f='${Version}' "$p")"; done
say "apt-get install took $((SECONDS - t)) s"

# the package's .pth acts only inside the server: the machine's own python3 is unchanged
sys_numpy=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__, numpy.__file__)' 2>/dev/null || echo "none")
case "$sys_numpy" in *"$PYDIR"*) die "/usr/bin/python3 outside the server imports numpy from $PYDIR: $sys_numpy" ;; esac
say "/usr/bin/python3 outside the server: numpy $sys_numpy"

# a free port: neither a TCP listener nor a socket in /var/run/postgresql
port=""
for p in $(seq 5491 5599); do
  [ -e "/var/run/postgresql/.s.PGSQL.$p" ] && continue
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
  port=$p; break
done
[ -n "$port" ] || die "no free port in 5491-5599"

t=$SECONDS
# the server must not inherit a PYTHONPATH from whoever runs this: the package alone must do
env -u PYTHONPATH -u PYTHONHOME -u PYTHONUSERBASE pg_createcluster "$PG_MAJOR" "$CLUSTER" --port "$port" --start \
  >/tmp/smoke_deb.cluster.log 2>&1 \
  || { cat /tmp/smoke_deb.cluster.log >&2; die "pg_createcluster $PG_MAJOR $CLUSTER --port $port --start failed (above)"; }
rm -f /tmp/smoke_deb.cluster.log
say "cluster $PG_MAJOR/$CLUSTER on port $port started in $((SECONDS - t)) s"

psql() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres -At "$@"; }

t=$SECONDS
psql >/dev/null <<'SQL' || die "the SQL above failed"
CREATE EXTENSION pyrec CASCADE;
-- 40 items in two genres; 60 users with 8 interactions each (480), with structure to learn:
-- a user's items cluster around (user mod 10) * 4
CREATE TABLE items (item_id int PRIMARY KEY, genre text NOT NULL);
INSERT INTO items SELECT i, CASE WHEN i % 3 = 0 THEN 'Horror' ELSE 'Comedy' END
FROM generate_series(1, 40) i;
CREATE TABLE interactions (user_id int NOT NULL, item_id int NOT NULL REFERENCES items,
                           created_at timestamptz NOT NULL);
INSERT INTO interactions
SELECT u, 1 + ((u % 10) * 4 + (k * (u % 7 + 1)) % 9) % 40, timestamptz '2026-01-01' + (u * 8 + k) * interval '1 hour'
FROM generate_series(1, 60) u, generate_series(1, 8) k;
SELECT pyrec.create_model('smoke', 'public.interactions', items => 'public.items', recipe => 'als');
CALL pyrec.train('smoke');
SQL
say "CREATE EXTENSION, 480 interactions, create_model and train in $((SECONDS - t)) s"

recs=$(psql -c "SELECT r.item_id || ' ' || i.genre FROM pyrec.recommend('smoke', '1', 5,
                  filter => 'EXCLUDE ItemID WHERE Items.genre IN (\"Horror\")') r
                JOIN items i ON i.item_id = r.item_id::int ORDER BY r.rank") || die "pyrec.recommend failed"
n=$(printf '%s\n' "$recs" | grep -c . || true)
[ "$n" -ge 1 ] || die "pyrec.recommend('smoke', '1', 5, filter => ...) returned no rows"
printf '%s\n' "$recs" | grep -q Horror && die "the filter excluded Horror, yet recommend returned: $recs"
say "pyrec.recommend with a filter: $n rows, none Horror ($(printf '%s\n' "$recs" | awk '{print $1}' | paste -sd, -))"

version=$(psql -c "SELECT pyrec.version()") || die "SELECT pyrec.version() failed"
say "pyrec.version(): $version"
check() {  # check <key> <expected prefix>
  local got
  got=$(psql -c "SELECT pyrec.version()->>'$1'")
  case "$got" in "$2"*) ;; *) die "pyrec.version()->>'$1' is '$got', expected '$2...'" ;; esac
}
check postgres_major "$PG_MAJOR"
check module_path "$PYDIR/pyrec_pg"
check python_package "$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR-pyrec" | sed 's/-[^-]*$//')"
check numpy "$(sed -n 's/^numpy==//p' "$ROOT/requirements-server.txt")"
check scipy "$(sed -n 's/^scipy==//p' "$ROOT/requirements-server.txt")"
# and numpy itself came from the package's directory (not Debian's, nor a PYTHONPATH)
where=$(psql <<'SQL'
CREATE FUNCTION pg_temp.whence() RETURNS text LANGUAGE plpython3u AS $$
import numpy, pyrec_pg, os
return "%s %s %s" % (numpy.__file__, pyrec_pg.__file__, os.environ.get("PYTHONPATH", "-"))
$$;
SELECT pg_temp.whence();
SQL
) || die "reading where the server imported numpy from failed"
read -r np_file pyrec_file pythonpath <<< "$where"
case "$np_file" in "$PYDIR"/numpy/*) ;; *) die "the server imported numpy from $np_file, not $PYDIR" ;; esac
case "$pyrec_file" in "$PYDIR"/pyrec_pg/*) ;; *) die "the server imported pyrec_pg from $pyrec_file, not $PYDIR" ;; esac
[ "$pythonpath" = - ] || die "the server runs with PYTHONPATH=$pythonpath; the package alone must put pyrec_pg on its path"
say "the server imported pyrec_pg and numpy from $PYDIR, with no PYTHONPATH"
