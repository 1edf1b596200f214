# SPDX-License-Identifier: MIT
# Sourced, not run: the ports of a private fleet on a shared host.
#
# Several quickstarts, test runs and GPU runs may share one host, and a port
# chosen free can be taken by someone else before our daemon binds it.  So a
# script chooses free ports, starts its daemon, and then checks that the
# process it started is the one listening on each port; if it is not (the
# daemon exited with "Address already in use", or someone else answers),
# the script stops with a message saying which port and who holds it,
# instead of driving another fleet's coordinator.
#
#   free_port                       a TCP port on 127.0.0.1 nobody listens on now
#   free_ports N                    N of them on one line, all different (two
#                                   free_port calls may get the same port)
#   port_taken PORT                 true when something listens on PORT
#   wait_listening PID LOG PORT...  waits (up to 20 s) until process PID listens
#                                   on every PORT; fails with a message naming
#                                   the port, its holder and LOG's last lines

# The logic is deploy/hfleet_ports.py's (harness.py imports it too).
hfleet_ports=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/hfleet_ports.py
free_port() { python3 "$hfleet_ports" free; }
free_ports() { python3 "$hfleet_ports" free "$1"; }
port_taken() { python3 "$hfleet_ports" taken "$1"; }
listener_pids() { python3 "$hfleet_ports" listeners "$1"; }

wait_listening() {
  local pid=$1 log=$2 port holders missing
  shift 2
  for _ in $(seq 1 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "hfleet: the process we started (pid $pid) exited before it listened on port(s) $*" >&2
      for port in "$@"; do
        holders=$(listener_pids "$port" | paste -sd" ")
        [ -n "$holders" ] && echo "hfleet: port $port is held by pid(s) $holders (another fleet?)" >&2
      done
      [ -f "$log" ] && { echo "hfleet: the last lines of $log:" >&2; tail -n 5 "$log" | sed 's/^/    /' >&2; }
      return 1
    fi
    missing=
    for port in "$@"; do
      listener_pids "$port" | grep -qx "$pid" || missing="$missing $port"
    done
    [ -z "$missing" ] && return 0
    sleep 0.1
  done
  for port in $missing; do
    holders=$(listener_pids "$port" | paste -sd" ")
    echo "hfleet: pid $pid does not listen on port $port after 20 s${holders:+; pid(s) $holders do}" >&2
  done
  return 1
}
