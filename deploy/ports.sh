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
#   port_taken PORT                 true when something listens on PORT
#   wait_listening PID LOG PORT...  waits (up to 20 s) until process PID listens
#                                   on every PORT; fails with a message naming
#                                   the port, its holder and LOG's last lines

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_taken() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

# The pids listening on TCP port $1 (from /proc: the listening sockets of
# /proc/net/tcp{,6} and the processes whose descriptors hold them; another
# user's processes are visible to root only); empty when none.
listener_pids() {
  python3 - "$1" <<'PY'
import os, sys
port = int(sys.argv[1])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
            inodes.add("socket:[%s]" % f[9])
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fds = os.listdir("/proc/%s/fd" % pid)
    except OSError:
        continue
    for fd in fds:
        try:
            if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
                print(pid)
                break
        except OSError:
            pass
PY
}

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
