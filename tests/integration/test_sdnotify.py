#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The daemons under systemd, as far as a machine where systemd is not PID 1
lets a test go: the test plays the service manager.

- hf-coordinator and hf-worker started with NOTIFY_SOCKET naming a unix
  datagram socket this test owns, and WATCHDOG_USEC set: READY=1 (the
  coordinator's only once hfctl gets answers), STATUS= lines a person can
  read (workers, jobs, tasks; the worker's registration and slots),
  WATCHDOG=1 every half interval, RELOADING=1 and READY=1 around a worker's
  SIGHUP, STOPPING=1 on SIGTERM;
- the coordinator holds its watchdog back while its database thread is stuck
  in one statement (a table locked by this test) and feeds it again after,
  but keeps feeding it while the database refuses connections (its status
  says so);
- log lines carry sd-daemon priority prefixes when JOURNAL_STREAM names the
  log file (stderr), none when it names another file; --log-format json
  writes one parseable object per line;
- --print-config of both daemons shows what -c, the environment and the
  options made of the configuration, masks the database password, says where
  the worker id came from (commented out when it is the host name), and its
  output loads back to the same values.

Not run here: systemd itself (Type=notify, WatchdogSec= restarting a daemon,
the journal); tests/packaging/test_install_tree.py checks the units with
systemd-analyze verify and security."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

WATCHDOG_USEC = 1000000  # fed every 0.5 s


class Manager:
    """The service manager's end of NOTIFY_SOCKET: every datagram, with the
    time it came."""

    def __init__(self, root):
        self.path = os.path.join(root, 'notify.sock')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.messages = []  # (monotonic time, {key: value})
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = {}
            for line in data.decode('utf-8', 'replace').split('\n'):
                if '=' in line:
                    k, v = line.split('=', 1)
                    fields[k] = v
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def env(self, **extra):
        e = dict(os.environ)
        for k in ('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'JOURNAL_STREAM'):
            e.pop(k, None)
        e['NOTIFY_SOCKET'] = self.path
        e['WATCHDOG_USEC'] = str(WATCHDOG_USEC)
        e.update(extra)
        return e

    def since(self, t0=0.0):
        with self.lock:
            return [(t, m) for t, m in self.messages if t >= t0]

    def wait(self, pred, timeout, what, t0=0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in self.since(t0):
                if pred(m):
                    return t, m
            time.sleep(0.05)
        raise AssertionError('timed out waiting for %s; got %r' % (what, [m for _, m in self.since(t0)][-8:]))

    def watchdogs(self, t0=0.0):
        return [t for t, m in self.since(t0) if m.get('WATCHDOG') == '1']

    def close(self):
        self.done = True
        self.sock.close()
        self.thread.join()


def dev_ino(path):
    st = os.stat(path)
    return '%d:%d' % (st.st_dev, st.st_ino)


def sanitizer_clean(d):
    """Under ASan+UBSan the daemon reported nothing."""
    log = d.log()
    for what in ('runtime error:', 'AddressSanitizer', 'LeakSanitizer'):
        assert what not in log, '%s: %s' % (d.name, log[log.index(what) - 200:][:3000])


def start_coordinator(c, mgr):
    """c's coordinator with mgr as its manager and its log file as the
    journal; returns the Daemon."""
    if not c.admin_token_file:
        c.admin_token_file = c.token_file('admin', 'admin')
    log = os.path.join(c.root, 'coordinator-sd.log')
    open(log, 'ab').close()
    d = harness.Daemon('coordinator-sd', [
        harness.COORDINATOR, '--database', c.pg.conninfo, '--worker-listen', c.worker_url,
        '--control-listen', c.control_url, '--http-listen', c.http_url,
        '--set', 'scheduler.heartbeat=' + c.heartbeat, '--set', 'scheduler.lease_timeout=' + c.lease,
        '--log-level', 'info'], c.root, env=mgr.env(JOURNAL_STREAM=dev_ino(log)))
    d.start()
    c.coordinator = d
    return d


def check_coordinator(c):
    mgr = Manager(c.root)
    try:
        d = start_coordinator(c, mgr)
        _, ready = mgr.wait(lambda m: m.get('READY') == '1', 60, 'the coordinator\'s READY=1')
        # READY=1 means serving: hfctl is answered at once.
        c.hfctl('models')
        assert 'worker' in ready.get('STATUS', ''), ready
        t_ready = time.monotonic()
        time.sleep(1.6)
        beats = mgr.watchdogs(t_ready)
        assert len(beats) >= 2, 'WATCHDOG=1 every 0.5 s expected, got %d in 1.6 s' % len(beats)

        # A worker (no manager of its own): the status counts it.
        c.start_worker('w-plain', slots=1)
        mgr.wait(lambda m: m.get('STATUS', '').startswith('1 worker connected'), 15,
                 'a STATUS= with one worker connected')

        # The database thread stuck in a statement: the watchdog is held back.
        locker = subprocess.Popen(['psql', '-X', '-q', '-h', c.pg.dir, '-p', str(c.pg.port), '-U', 'postgres',
                                   '-d', 'hfleet'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            locker.stdin.write('BEGIN;\nLOCK TABLE jobs IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n')
            locker.stdin.flush()
            assert locker.stdout.readline().strip() == 'locked'
            # A read of the locked table keeps the database thread in one statement.
            reader = threading.Thread(target=lambda: c.hfctl('jobs', check=False, timeout=30))
            reader.start()
            try:
                c.wait_for(lambda: 'holding the watchdog back' in d.log(), 15,
                           'the coordinator holding its watchdog back')
                t_held = time.monotonic()
                time.sleep(1.5)
                assert mgr.watchdogs(t_held + 0.05) == [], 'WATCHDOG=1 sent while the database thread is stuck'
                assert d.alive()
            finally:
                locker.stdin.write('ROLLBACK;\n')
                locker.stdin.close()
                locker.wait(10)
                reader.join()
        finally:
            if locker.poll() is None:
                locker.kill()
        t_free = time.monotonic()
        mgr.wait(lambda m: m.get('WATCHDOG') == '1', 5, 'WATCHDOG=1 again', t_free)
        c.wait_for(lambda: 'feeding the watchdog again' in d.log(), 5, 'the watchdog fed again')

        # The database refusing connections: the status says so, the watchdog goes on.
        c.pg.stop('fast')
        t_down = time.monotonic()
        c.hfctl('jobs', check=False, timeout=30)
        mgr.wait(lambda m: 'database unreachable' in m.get('STATUS', ''), 15,
                 'a STATUS= saying the database is unreachable', t_down)
        t0 = time.monotonic()
        time.sleep(1.6)
        assert len(mgr.watchdogs(t0)) >= 2, 'the watchdog must go on while the database refuses connections'

        t_stop = time.monotonic()
        c.workers['w-plain'].stop()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0, d.log()[-3000:]
        mgr.wait(lambda m: m.get('STOPPING') == '1', 5, 'STOPPING=1', t_stop)
        sanitizer_clean(d)

        # JOURNAL_STREAM named the log file: every line has a priority prefix.
        lines = [line for line in d.log().splitlines() if line]
        bad = [line for line in lines if not re.match(r'<[3467]>(error|warning|info|debug): ', line)]
        assert not bad, 'lines without a priority prefix: %r' % bad[:3]
        assert any(line.startswith('<4>warning: holding the watchdog back') for line in lines), lines[-10:]
        assert any(line.startswith('<6>info: ready: ') for line in lines)
        print('coordinator: READY, STATUS, WATCHDOG (held while stuck, fed while the database is down), '
              'STOPPING, priority prefixes: ok')
    finally:
        mgr.close()
        os.unlink(mgr.path)


def check_worker(c):
    c.pg.start()
    c.start_coordinator()
    mgr = Manager(c.root)
    try:
        state = os.path.join(c.root, 'state-w-sd')
        other = os.path.join(c.root, 'not-stderr')
        open(other, 'w').close()
        env = mgr.env(JOURNAL_STREAM=dev_ino(other))  # names a file that is not stderr
        env['HFLEET_WORKER_TOKEN_FILE'] = c.token_file('w-sd', 'worker')
        d = harness.Daemon('w-sd', [
            harness.WORKER, '--id', 'w-sd', '--coordinator-url', c.worker_url, '--state-dir', state,
            '--slots', '2', '--runner', 'python3 ' + harness.ARITH_RUNNER, '--log-format', 'json'],
            c.root, env=env).start()
        _, ready = mgr.wait(lambda m: m.get('READY') == '1', 60, 'the worker\'s READY=1')
        assert 'w-sd' in ready.get('STATUS', ''), ready
        _, st = mgr.wait(lambda m: m.get('STATUS', '').startswith('registered with'), 15,
                         'a STATUS= saying the worker is registered')
        assert 'of 2 slots busy' in st['STATUS'], st
        t0 = time.monotonic()
        time.sleep(1.6)
        assert len(mgr.watchdogs(t0)) >= 2, 'the worker feeds its watchdog every 0.5 s'

        t_hup = time.monotonic()
        d.proc.send_signal(signal.SIGHUP)
        mgr.wait(lambda m: m.get('RELOADING') == '1', 10, 'RELOADING=1', t_hup)
        mgr.wait(lambda m: m.get('READY') == '1', 30, 'READY=1 after the reload', t_hup)

        t_stop = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(60) == 0, d.log()[-3000:]
        mgr.wait(lambda m: m.get('STOPPING') == '1', 5, 'STOPPING=1', t_stop)
        sanitizer_clean(d)

        # JSON lines, no priority prefix (JOURNAL_STREAM is another file's).
        lines = [line for line in d.log().splitlines() if line]
        assert lines
        for line in lines:
            o = json.loads(line)
            assert set(o) == {'ts', 'level', 'daemon', 'pid', 'msg'}, o
            assert o['daemon'] == 'hf-worker' and o['level'] in ('error', 'warning', 'info', 'debug'), o
            assert re.match(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$', o['ts']), o
        assert any('draining' in json.loads(line)['msg'] for line in lines)
        print('worker: READY, STATUS, WATCHDOG, RELOADING, STOPPING, JSON lines without a prefix: ok')
    finally:
        mgr.close()


def print_config(daemon, args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith('HFLEET_')}
    env.update(env_extra or {})
    p = subprocess.run([daemon] + args + ['--print-config'], capture_output=True, text=True, env=env,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def settings(text):
    """section.key -> value of the lines that are not commented out."""
    out, section = {}, ''
    for line in text.splitlines():
        m = re.match(r'\[(\w+)\]$', line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r'(\w+) = (.*)$', line)
        if m:
            out[section + '.' + m.group(1)] = m.group(2)
    return out


def check_print_config(root):
    conf = os.path.join(root, 'coordinator.conf')
    with open(conf, 'w') as f:
        f.write('[database]\nconninfo = postgresql://bob:pa55word@db.example:5433/hf?sslmode=require\n'
                '[scheduler]\nheartbeat = 3s\nlease_timeout = 1m\n')
    out = print_config(harness.COORDINATOR, ['-c', conf, '--set', 'scheduler.lease_timeout=90s',
                                             '--http-listen', ''],
                       {'HFLEET_LOG_LEVEL': 'debug', 'HFLEET_LOG_FORMAT': 'json'})
    s = settings(out)
    assert s['scheduler.heartbeat'] == '3s', s            # the file
    assert s['scheduler.lease_timeout'] == '90s', s       # --set over the file
    assert s['coordinator.http_listen'] == '', s          # an option
    assert s['log.level'] == 'debug' and s['log.format'] == 'json', s  # the environment
    assert 'pa55word' not in out, 'the database password is printed'
    assert re.search(r'^# conninfo = .*password=\*{8}', out, re.M), out
    assert 'database.conninfo' not in s  # commented out: a file made from it needs the password put back
    assert conf in out and 'HFLEET_LOG_LEVEL' in out and 'command line' in out.split('\n\n')[0]
    # The password in key=value form, from the environment, quoted.
    out = print_config(harness.COORDINATOR, [],
                       {'HFLEET_DATABASE_URL': "host=/run/pg dbname=x password='se cr\\'et'"})
    assert 'se cr' not in out and "et'" not in out.split('conninfo =')[1].split('\n')[0], out
    # It loads back to the same values (but the commented-out conninfo).
    again = os.path.join(root, 'again.conf')
    out = print_config(harness.COORDINATOR, ['-c', conf, '--set', 'scheduler.lease_timeout=90s'])
    with open(again, 'w') as f:
        f.write(out)
    back = settings(print_config(harness.COORDINATOR, ['-c', again]))
    assert back.pop('database.conninfo') == 'dbname=hfleet'
    assert back == settings(out)
    # Without a password, conninfo is printed as it is in effect.
    out = print_config(harness.COORDINATOR, ['--database', 'host=/tmp dbname=hf'])
    assert settings(out)['database.conninfo'] == 'host=/tmp dbname=hf', out

    wconf = os.path.join(root, 'worker.conf')
    with open(wconf, 'w') as f:
        f.write('[worker]\nid = from-file\nslots = 3\n')
    out = print_config(harness.WORKER, [])
    assert 'worker.id' not in settings(out) and re.search(r'^# id = ', out, re.M), out
    assert 'the host name is the worker id' in out
    out = print_config(harness.WORKER, ['-c', wconf])
    assert settings(out)['worker.id'] == 'from-file' and ('Set in %s.' % wconf) in out
    assert settings(out)['worker.slots'] == '3'
    out = print_config(harness.WORKER, ['-c', wconf], {'HFLEET_WORKER_ID': 'from-env'})
    assert settings(out)['worker.id'] == 'from-env' and 'Set by the environment (HFLEET_WORKER_ID)' in out
    out = print_config(harness.WORKER, ['-c', wconf, '--id', 'from-cli', '--set', 'worker.slots=4'],
                       {'HFLEET_WORKER_ID': 'from-env'})
    s = settings(out)
    assert s['worker.id'] == 'from-cli' and s['worker.slots'] == '4' and 'Set on the command line' in out
    with open(again, 'w') as f:
        f.write(out)
    assert settings(print_config(harness.WORKER, ['-c', again])) == s
    print('--print-config: -c, --set, options, environment, masked password, worker id source: ok')


def main():
    with tempfile.TemporaryDirectory(prefix='hfleet-pc-') as root:
        check_print_config(root)
    with harness.cluster() as c:
        check_coordinator(c)
        check_worker(c)
    print('ok')


if __name__ == '__main__':
    main()
