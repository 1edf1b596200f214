#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A private PostgreSQL cluster for one checkout's quickstart: created on
# first use, on a unix socket only, on a port nobody else holds.
#
#   deploy/private-pg.sh start   STATE   create (first time) and start; prints the conninfo
#   deploy/private-pg.sh stop    STATE   stop it if it runs
#   deploy/private-pg.sh where   STATE   print the cluster's directory
#   deploy/private-pg.sh conninfo STATE  print the conninfo of the hfleet database
#   deploy/private-pg.sh destroy STATE   stop it and delete it
#
# STATE is the checkout's state directory (.state).  The cluster lives in
# STATE/pg when the user it runs as can reach that directory; it always
# can when the script runs as an ordinary user (initdb then runs as that
# user).  As root, initdb must run as the postgres user, which cannot enter
# a 0700 home directory such as /root or a `mktemp -d` directory; the
# permissions of the user's directories are never changed to let it in.
# Instead the cluster lives in a directory of the postgres user's own
# (~postgres/hfleet-quickstart/KEY, 0700), KEY being derived from the
# state directory's real path, so that each checkout has its own.  The same
# happens when STATE/pg is too long a path for a unix socket (107 bytes).
# Wherever it is, STATE/pg.location records it (dir=..., port=...), which is
# how stop, where and destroy find it again.
set -euo pipefail

say() { printf '\033[1mhfleet:\033[0m %s\n' "$*" >&2; }
die() { printf 'hfleet: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 start|stop|where|conninfo|destroy STATE_DIR"
cmd=$1
mkdir -p "$2"
state=$(cd "$2" && pwd -P)
location="$state/pg.location"

pg_bin() {
  for v in 17 16 15; do
    if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then echo "/usr/lib/postgresql/$v/bin"; return; fi
  done
  die "PostgreSQL server binaries not found (deploy/install-deps.sh installs them)"
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command as the cluster's owner: postgres when root (from /, as
# the current directory may be one it cannot enter), else the user.
as_owner() {
  if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# free_port and port_taken.  A port nobody listens on: the cluster uses it
# only to name its socket file, but two clusters on one port cannot share a
# socket dir, and a later `listen_addresses` change must not collide.
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

# Reads key=value from the location file.
location_get() {
  if [ -f "$location" ]; then sed -n "s/^$1=//p" "$location" | tail -n 1; fi
}

# The unix socket is DIR/.s.PGSQL.PORT: sun_path holds 107 bytes.
socket_fits() {
  [ $(( ${#1} + 18 )) -le 107 ]
}

# Where a new cluster goes (prints the directory, creating it owned by the
# cluster's owner, mode 0700).
choose_dir() {
  local dir="$state/pg"
  if socket_fits "$dir"; then
    mkdir -p "$dir"
    chmod 700 "$dir"
    if is_root; then chown postgres: "$dir"; fi
    if as_owner test -w "$dir" -a -x "$dir" 2>/dev/null; then
      echo "$dir"
      return
    fi
    rmdir "$dir" 2>/dev/null || true
  fi
  local key home base
  key=$(printf '%s' "$state" | sha256sum | cut -c1-12)
  if is_root; then
    home=$(getent passwd postgres | cut -d: -f6)
    [ -n "$home" ] && [ -d "$home" ] || die "the postgres user has no home directory to keep the cluster in"
    base="$home/hfleet-quickstart"
  else
    base="${XDG_STATE_HOME:-$HOME/.local/state}/hfleet-quickstart"
    socket_fits "$base/$key" || base="/tmp/hfleet-quickstart-$(id -u)"
  fi
  dir="$base/$key"
  as_owner mkdir -p -m 0700 "$base"
  as_owner mkdir -p -m 0700 "$dir"
  # Someone else's directory in a shared place is not ours to use.
  [ "$(stat -c %u "$dir")" = "$(as_owner id -u)" ] || die "$dir exists and belongs to another user"
  as_owner chmod 700 "$dir"
  echo "$dir"
}

start() {
  local dir port bin
  bin=$(pg_bin)
  dir=$(location_get dir)
  port=$(location_get port)
  if [ -z "$dir" ] && [ -f "$state/pg/data/PG_VERSION" ]; then
    dir="$state/pg" # a cluster made before pg.location existed
  fi
  if [ -z "$dir" ] || [ ! -f "$dir/data/PG_VERSION" ]; then
    dir=$(choose_dir)
    say "creating a private PostgreSQL cluster in $dir"
    as_owner "$bin/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 >/dev/null
  fi
  # Settings live in a file of their own, included from postgresql.conf,
  # so that no path goes through a shell's quoting.
  if ! grep -q "^include_if_exists = 'hfleet.conf'" "$dir/data/postgresql.conf" 2>/dev/null; then
    as_owner sh -c 'printf "%s\n" "include_if_exists = '"'"'hfleet.conf'"'"'" >>"$1/data/postgresql.conf"' sh "$dir"
  fi
  if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    [ -n "$port" ] || die "a cluster runs in $dir but $location does not say its port"
  else
    if [ -z "$port" ] || port_taken "$port"; then port=${HFLEET_PG_PORT:-$(free_port)}; fi
    local sockdir=${dir//\'/\'\'}
    as_owner sh -c 'cat >"$1/data/hfleet.conf"' sh "$dir" <<CONF
# Written by deploy/private-pg.sh at every start.
listen_addresses = ''
port = $port
unix_socket_directories = '$sockdir'
CONF
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null ||
      die "PostgreSQL did not start; see $dir/log"
  fi
  printf 'dir=%s\nport=%s\n' "$dir" "$port" >"$location"
  say "PostgreSQL runs in $dir (unix socket, port $port)"
  local psql_cmd=(psql -X -h "$dir" -p "$port" -U postgres)
  "${psql_cmd[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'hfleet'" | grep -q 1 ||
    "${psql_cmd[@]}" -d postgres -qc "CREATE DATABASE hfleet"
  conninfo
}

# libpq conninfo values in single quotes, with \ and ' escaped.
conninfo() {
  local dir port q
  dir=$(location_get dir)
  port=$(location_get port)
  [ -n "$dir" ] || die "no cluster recorded in $location"
  q=${dir//\\/\\\\}
  q=${q//\'/\\\'}
  printf "host='%s' port=%s user=postgres dbname=hfleet\n" "$q" "$port"
}

stop() {
  local dir
  dir=$(location_get dir)
  [ -n "$dir" ] || { [ -f "$state/pg/data/PG_VERSION" ] && dir="$state/pg"; } || return 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
}

case "$cmd" in
start) start ;;
stop) stop ;;
where) d=$(location_get dir); [ -n "$d" ] || die "no cluster recorded in $location"; echo "$d" ;;
conninfo) conninfo ;;
destroy)
  stop
  d=$(location_get dir)
  if [ -n "$d" ] && [ -f "$d/data/PG_VERSION" ]; then
    rm -rf "$d"
    say "deleted the cluster in $d"
  fi
  rm -f "$location"
  ;;
*) die "unknown command \"$cmd\": start, stop, where, conninfo or destroy" ;;
esac
