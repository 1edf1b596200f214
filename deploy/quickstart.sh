#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# hfleet quickstart: the whole pipeline on this one machine.
#
#   deploy/quickstart.sh          install what is missing, build, start a private
#                                 PostgreSQL, hf-coordinator and one hf-worker under
#                                 .state/, run the model suite's tests on the
#                                 hardware found, and print the outcome per model
#   deploy/quickstart.sh stop     stop the daemons and the database left running
#   deploy/quickstart.sh clean    stop, then delete the database and .state/
#
# Authentication is on, as in production: the script makes an admin token
# (.state/admin.token) and a worker token (.state/worker.token), both mode
# 0600, with hf-coordinator --create-token.
#
# The database is a private PostgreSQL cluster (deploy/private-pg.sh): in
# .state/pg when its owner can reach it there, else (as root in a 0700
# directory such as /root) in ~postgres/hfleet-quickstart/KEY, one per
# checkout; the script says where, and .state/pg.location remembers it.
#
# Options (environment):
#   HFLEET_BACKENDS   backends to test (default: every backend the worker found)
#   HFLEET_MODELS     comma-separated models instead of the whole suite
#   HFLEET_RUNNER_PYTHON  the Python that runs the reference runner (default python3)
#   HFLEET_WORKER_PORT, HFLEET_CONTROL_PORT, HFLEET_HTTP_PORT
#                     ports on 127.0.0.1 (default: free ones; the script checks that
#                     its coordinator is the process listening on each, and refuses
#                     to go on otherwise: another fleet may share the host)
#
# At the end it prints the cluster's addresses and writes .state/env, a file
# to source that points hfctl at this cluster.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$root/.state"
build="$root/build"
pg="$root/deploy/private-pg.sh"
python=${HFLEET_RUNNER_PYTHON:-python3}

say() { printf '\033[1mhfleet:\033[0m %s\n' "$*" >&2; }

stop_all() {
  for p in worker coordinator; do
    if [ -f "$state/$p.pid" ] && kill -0 "$(cat "$state/$p.pid")" 2>/dev/null; then
      kill -TERM "$(cat "$state/$p.pid")" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$(cat "$state/$p.pid")" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$state/$p.pid"
  done
  if [ -d "$state" ]; then "$pg" stop "$state"; fi
}

case "${1:-}" in
stop)
  stop_all
  say "stopped"
  exit 0
  ;;
clean)
  stop_all
  if [ -d "$state" ]; then "$pg" destroy "$state"; fi
  rm -rf "$state"
  say "deleted the database and $state"
  exit 0
  ;;
"") ;;
*)
  echo "usage: $0 [stop|clean]" >&2
  exit 2
  ;;
esac

say "installing what is missing (Debian packages)"
"$root/deploy/install-deps.sh"

say "building"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" --buildtype=debugoptimized >/dev/null
fi
ninja -C "$build" >/dev/null

stop_all
mkdir -p "$state"
. "$root/deploy/ports.sh"
# Ports of our own: free ones unless asked (another quickstart, test or fleet
# may run on this host); wait_listening below checks that the coordinator we
# start is the process answering on each.
read -r free_w free_c free_h <<< "$(free_ports 3)"
port_w=${HFLEET_WORKER_PORT:-$free_w}
port_c=${HFLEET_CONTROL_PORT:-$free_c}
port_h=${HFLEET_HTTP_PORT:-$free_h}
for p in "$port_w" "$port_c" "$port_h"; do
  if port_taken "$p"; then say "port $p is in use by another process; choose another (HFLEET_WORKER_PORT, HFLEET_CONTROL_PORT, HFLEET_HTTP_PORT)"; exit 1; fi
done

conninfo=$("$pg" start "$state")
pgdir=$("$pg" where "$state")
port_pg=$(sed -n 's/^port=//p' "$state/pg.location")
psql_cmd=(psql -X -h "$pgdir" -p "$port_pg" -U postgres)

# Credentials (issue 11): an admin token for hfctl and a worker token for the
# worker, made once in the database and kept in .state/ files of mode 0600.
# One worker id per checkout, so two quickstarts on one host never share one.
wid="$(hostname)-quickstart-$(printf '%s' "$state" | sha256sum | cut -c1-8)"
make_token() { # FILE NAME ROLE
  if [ ! -s "$1" ]; then
    (umask 077 && "$build/coordinator/hf-coordinator" --database "$conninfo" --log-level warn \
      --create-token "$2" --role "$3" >"$1.new" 2>>"$state/coordinator.log" && mv "$1.new" "$1") ||
      { say "could not make the $3 token; see $state/coordinator.log"; exit 1; }
  fi
  chmod 600 "$1"
}
make_token "$state/admin.token" admin admin
make_token "$state/worker.token" "$wid" worker
export HFLEET_TOKEN_FILE="$state/admin.token"

hfctl=("$build/coordinator/hfctl/hfctl" --control "tcp://127.0.0.1:$port_c")

say "starting hf-coordinator (log: $state/coordinator.log)"
"$build/coordinator/hf-coordinator" --database "$conninfo" \
  --worker-listen "tcp://127.0.0.1:$port_w" --control-listen "tcp://127.0.0.1:$port_c" \
  --http-listen "http://127.0.0.1:$port_h" \
  --registry "$root/coordinator/registry/models.tsv" >>"$state/coordinator.log" 2>&1 &
echo $! >"$state/coordinator.pid"
wait_listening "$(cat "$state/coordinator.pid")" "$state/coordinator.log" "$port_w" "$port_c" "$port_h" ||
  { say "hf-coordinator did not start on its ports; nothing else was started"; exit 1; }
# A line to source that points hfctl at this cluster.
cat >"$state/env" <<ENV
# source this file to point hfctl (and another hf-worker) at the quickstart's cluster
export HFLEET_CONTROL_URL=tcp://127.0.0.1:$port_c
export HFLEET_WORKER_URL=tcp://127.0.0.1:$port_w
export HFLEET_TOKEN_FILE=$(printf '%q' "$state/admin.token")
export PATH=$(printf '%q' "$build/coordinator/hfctl"):\$PATH
ENV

say "starting hf-worker (log: $state/worker.log)"
HFLEET_WORKER_TOKEN_FILE="$state/worker.token" \
"$build/worker/hf-worker" --id "$wid" --coordinator-url "tcp://127.0.0.1:$port_w" \
  --state-dir "$state/worker" --slots "$(nproc)" \
  --runner "$(printf '%q %q' "$python" "$root/worker/runners/hfleet_runner.py")" >>"$state/worker.log" 2>&1 &
echo $! >"$state/worker.pid"

for _ in $(seq 1 300); do
  kill -0 "$(cat "$state/worker.pid")" 2>/dev/null || { say "hf-worker exited; see $state/worker.log"; exit 1; }
  n=$("${hfctl[@]}" --json workers 2>/dev/null | "$python" -c '
import json, sys
print(sum(1 for w in json.load(sys.stdin) if w.get("worker_id") == sys.argv[1]))' "$wid" 2>/dev/null || echo 0)
  [ "$n" -ge 1 ] && break
  sleep 0.2
done
[ "${n:-0}" -ge 1 ] || { say "the worker $wid did not register; see $state/worker.log"; exit 1; }

say "the fleet:"
"${hfctl[@]}" workers

backends=${HFLEET_BACKENDS:-$("${hfctl[@]}" --json workers | "$python" -c '
import json, sys
seen = []
for w in json.load(sys.stdin):
    for d in w.get("devices", []):
        b = d.get("backend")
        if b and b not in seen:
            seen.append(b)
print(",".join(seen) or "cpu")')}

if [ -n "${HFLEET_MODELS:-}" ]; then select=(--models "$HFLEET_MODELS"); else select=(--all); fi
say "submitting the suite's tests for backends: $backends"
job=$("${hfctl[@]}" --json submit "${select[@]}" --backends "$backends" --kind test --name quickstart |
  "$python" -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')

"${hfctl[@]}" watch "$job" || true
echo
"${hfctl[@]}" results "$job"
echo

torch_line=$("${hfctl[@]}" --json workers | "$python" -c '
import json, sys
for w in json.load(sys.stdin):
    for r in w.get("runtimes", []):
        if r.get("name") in ("torch", "transformers") and not r.get("available"):
            print("%s: %s" % (r["name"], r.get("detail") or "not available"))' || true)
if [ -n "$torch_line" ]; then
  say "no model was really run on this machine, because:"
  printf '%s\n' "$torch_line" | sed 's/^/    /' >&2
  cat >&2 <<MSG
    Each model above says "skipped" with that reason; no number was made up.
    To get real runs, give the runner a Python with PyTorch and transformers:
      HFLEET_RUNNER_PYTHON=/path/to/venv/bin/python deploy/quickstart.sh
    (on Debian: apt-get install python3-torch, then transformers into a venv
    made with --system-site-packages; or run hf-worker on a GPU machine).
MSG
fi

cat >&2 <<MSG

hfleet: the results are in PostgreSQL.  Query them with:
    $(printf "%q " "${psql_cmd[@]}")-d hfleet -c "SELECT model_type, backend, status, reason FROM task_outcomes WHERE job_id = $job ORDER BY model_type"
  This cluster's addresses: control tcp://127.0.0.1:$port_c (hfctl), workers
  tcp://127.0.0.1:$port_w, metrics http://127.0.0.1:$port_h/metrics.
  Point hfctl at it (the admin token is $state/admin.token):
    . $(printf '%q' "$state/env"); hfctl jobs
  The database, coordinator and worker keep running; stop them with:
    deploy/quickstart.sh stop
MSG
