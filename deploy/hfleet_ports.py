#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Ports of a private fleet on a shared host, for deploy/ports.sh (the
quickstart, tests/gpu/run-on-gpu.sh) and tests/integration/harness.py.

A port chosen free can be taken by someone else before our daemon binds
it, so whoever starts a daemon checks that the process it started is the
one listening: otherwise it would drive another fleet's coordinator.

    hfleet_ports.py free            a TCP port on 127.0.0.1 nobody listens on now
    hfleet_ports.py taken PORT      exit 0 when something listens on PORT
    hfleet_ports.py listeners PORT  the pids listening on PORT, one a line
"""
import os
import socket
import sys


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


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
    if len(argv) == 2 and argv[1] == 'free':
        print(free_port())
        return 0
    if len(argv) == 3 and argv[1] == 'taken' and argv[2].isdigit():
        return 0 if port_taken(int(argv[2])) else 1
    if len(argv) == 3 and argv[1] == 'listeners' and argv[2].isdigit():
        for pid in sorted(listener_pids(int(argv[2]))):
            print(pid)
        return 0
    print('usage: hfleet_ports.py free | taken PORT | listeners PORT',
          file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
