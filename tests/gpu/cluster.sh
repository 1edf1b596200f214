# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2154,SC2034  # repo and out are the caller's; the ports are used by the caller
# Sourced, not run: the private cluster of a GPU run (tests/gpu/run-on-gpu.sh,
# tests/gpu/run-multi-gpu.sh).  Owns the start-up those scripts share: a
# directory of our own, free ports, the carried binaries and PostgreSQL
# (.carry/bundle.tar.xz from tests/gpu/bundle.sh), a private PostgreSQL, the
# admin and worker tokens, and hf-coordinator; and the teardown.  Each script
# starts its own hf-worker(s).
#
# The caller sets repo (the repository root) and out (the evidence folder).
#   cluster_start              $w, ports, binaries, PostgreSQL, tokens; defines
#                              conninfo, pgbin, port_pg, port_w, port_c, port_h,
#                              port_wm
#   cluster_coordinator REG    hf-coordinator with registry REG (extra
#                              arguments follow), logging to $out/coordinator.log
#   hfctl ARGS / psql_q ARGS   the control client, psql on the hfleet database
#   wait_worker ID [PID]       until the coordinator lists worker ID (60 s; fails
#                              at once when process PID has exited)
#   prewarm_wait LOG LIMIT     until the warm runners LOG names have imported
#                              their frameworks (at most LIMIT s); prints one line
#   cluster_stop               stops PostgreSQL, removes $w
# HF_LOCAL_BUILD=DIR (a meson build directory) and HF_PG_BIN=DIR (PostgreSQL's
# bin directory) use this machine's binaries instead of the bundle: a check of
# the scripts' non-GPU parts without a GPU.

cluster_start() {
  # Our own directory and ports: another run may share the host.
  w=$(mktemp -d /tmp/hfleet.XXXXXX); chmod 755 "$w"
  . "$repo/deploy/ports.sh"
  read -r port_pg port_w port_c port_h port_wm <<< "$(free_ports 5)"
  if [ -n "${HF_LOCAL_BUILD:-}" ]; then
    mkdir -p "$w/bin"
    ln -s "$HF_LOCAL_BUILD/coordinator/hf-coordinator" "$HF_LOCAL_BUILD/worker/hf-worker" \
      "$HF_LOCAL_BUILD/coordinator/hfctl/hfctl" "$w/bin/"
    pgbin=${HF_PG_BIN:-/usr/lib/postgresql/15/bin}
  else
    tar -C "$w" -xJf "$repo/.carry/bundle.tar.xz"
    chmod -R a+rX "$w"
    # Our binaries and PostgreSQL find their Debian libraries here; the runner
    # (Python, torch) must not, so its command drops the variable.
    export LD_LIBRARY_PATH=$w/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    pgbin=$w/pg/usr/lib/postgresql/15/bin
  fi
  id hfpg >/dev/null 2>&1 || useradd -M -d "$w" hfpg
  mkdir -p "$w/db"; chown hfpg "$w/db"
  as_pg "$pgbin/initdb" -D "$w/db/data" --auth=trust -U postgres -E UTF8 >"$out/initdb.log" 2>&1 || { cat "$out/initdb.log"; return 1; }
  as_pg "$pgbin/pg_ctl" -D "$w/db/data" -l "$w/db/log" -w -o "-k $w/db -p $port_pg -c listen_addresses=''" start >/dev/null || { cat "$w/db/log"; return 1; }
  "$pgbin/psql" -X -h "$w/db" -p "$port_pg" -U postgres -d postgres -qc "CREATE DATABASE hfleet"
  conninfo="host=$w/db port=$port_pg user=postgres dbname=hfleet"
  # Credentials (docs/operations.md, "Tokens"): an admin token for hfctl
  # and the worker's token, made in the database before the coordinator
  # starts and loads them.
  umask 077
  "$w/bin/hf-coordinator" --database "$conninfo" --create-token admin --role admin >"$w/admin.token"
  "$w/bin/hf-coordinator" --database "$conninfo" --create-token gpu-worker --role worker >"$w/worker.token"
  umask 022
  export HFLEET_TOKEN_FILE=$w/admin.token HFLEET_WORKER_TOKEN_FILE=$w/worker.token
}

as_pg() { runuser -u hfpg -- env LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}" "$@"; }
psql_q() { "$pgbin/psql" -X -h "$w/db" -p "$port_pg" -U postgres -d hfleet "$@"; }
hfctl() { "$w/bin/hfctl" --control "tcp://127.0.0.1:$port_c" "$@"; }

cluster_coordinator() {
  local registry=$1; shift
  "$w/bin/hf-coordinator" --database "$conninfo" --registry "$registry" \
    --worker-listen "tcp://127.0.0.1:$port_w" --control-listen "tcp://127.0.0.1:$port_c" \
    --http-listen "http://127.0.0.1:$port_h" "$@" >"$out/coordinator.log" 2>&1 &
  coordinator_pid=$!
  wait_listening "$coordinator_pid" "$out/coordinator.log" "$port_w" "$port_c" "$port_h"
}

wait_worker() {
  for _ in $(seq 1 300); do
    hfctl --json workers 2>/dev/null | grep -q "\"$1\"" && return 0
    [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
    sleep 0.2
  done
  return 1
}

# The warm runners the worker starts ahead of tasks (runner.prewarm) import
# torch and transformers first; a fleet's worker that is up already has done
# that.
prewarm_wait() {
  local log=$1 limit=$2 t0 n=0 k=0
  t0=$(date +%s.%N)
  for _ in $(seq 1 $((limit * 5))); do
    n=$(grep -c 'warm runner started for' "$log")
    k=$(grep -cE 'before its first task: hfleet-runner: (imported|could not import)' "$log")
    [ "$n" -gt 0 ] && [ "$k" -ge "$n" ] && break
    sleep 0.2
  done
  echo "prewarm: $k of $n warm runners done importing after $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
}

cluster_stop() {
  as_pg "$pgbin/pg_ctl" -D "$w/db/data" -m fast -w stop >/dev/null
  rm -rf "$w"
}
