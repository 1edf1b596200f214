#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Ports of a private fleet on a shared host, for deploy/ports.sh (the
quickstart, tests/gpu/run-on-gpu.sh) and tests/integration/harness.py.

A port chosen free can be taken by someone else before our daemon binds
it, so whoever starts a daemon checks that the process it started is the
one listening: otherwise it would drive another fleet's coordinator.

    hfleet_ports.py free [N]        a TCP port on 127.0.0.1 nobody listens on now
                                    (N of them, all different, on one line)
    hfleet_ports.py taken PORT      exit 0 when something listens on PORT
    hfleet_ports.py listeners PORT  the pids listening on PORT, one a line
"""
import os
import socket
import sys


# Ports free_port has handed out in this process.  The kernel may give
# the same free port to two binds in a row once the first socket is
# closed (CI once saw a coordinator's control and HTTP ports chosen
# equal), and nothing listens on a port handed out until its daemon
# starts.
_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that is free now and that this process has
    not handed out before."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise OSError('no free TCP port on 127.0.0.1 that was not handed out already')


def port_taken(port):
    with socket.socket() as s:
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            return True
    return False


def listener_pids(port):
    """The pids whose descriptors hold a socket listening on TCP port (from
    /proc: /proc/net/tcp{,6} and /proc/PID/fd; another user's processes are
    visible to root only)."""
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == '0A' and int(fields[1].rsplit(':', 1)[1], 16) == port:
                inodes.add('socket:[%s]' % fields[9])
    pids = set()
    if not inodes:
        return pids
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            fds = os.listdir('/proc/%s/fd' % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink('/proc/%s/fd/%s' % (pid, fd)) in inodes:
                    pids.add(int(pid))
                    break
            except OSError:
                pass
    return pids


def main(argv):
    if argv[1:2] == ['free'] and (len(argv) == 2 or (len(argv) == 3 and argv[2].isdigit()
                                                     and 1 <= int(argv[2]) <= 64)):
        print(' '.join(str(free_port()) for _ in range(int(argv[2]) if len(argv) == 3 else 1)))
        return 0
    if len(argv) == 3 and argv[1] == 'taken' and argv[2].isdigit():
        return 0 if port_taken(int(argv[2])) else 1
    if len(argv) == 3 and argv[1] == 'listeners' and argv[2].isdigit():
        for pid in sorted(listener_pids(int(argv[2]))):
            print(pid)
        return 0
    print('usage: hfleet_ports.py free [N] | taken PORT | listeners PORT',
          file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
