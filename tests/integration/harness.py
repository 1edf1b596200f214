# SPDX-License-Identifier: MIT
"""Helpers for hfleet's integration tests: a private PostgreSQL cluster,
the real daemons as child processes on loopback, and hfctl.

Everything lives under one temporary directory that is removed at the end;
nothing touches the system's PostgreSQL cluster.
"""
import atexit
import base64
import contextlib
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sys
import subprocess
import tempfile
import time
import unittest
import urllib.request

BUILD = os.environ.get('HF_BUILD_ROOT', os.path.join(os.path.dirname(__file__), '..', '..', 'build'))
SOURCE = os.environ.get('HF_SOURCE_ROOT', os.path.join(os.path.dirname(__file__), '..', '..'))
COORDINATOR = os.path.join(BUILD, 'coordinator', 'hf-coordinator')
WORKER = os.path.join(BUILD, 'worker', 'hf-worker')
HFCTL = os.path.join(BUILD, 'coordinator', 'hfctl', 'hfctl')
ARITH_RUNNER = os.path.join(SOURCE, 'tests', 'integration', 'arith_runner.py')


def pg_bindir():
    for v in ('17', '16', '15'):
        d = '/usr/lib/postgresql/%s/bin' % v
        if os.path.exists(os.path.join(d, 'initdb')):
            return d
    raise RuntimeError('PostgreSQL server binaries not found (install postgresql-15)')


# free_port and listener_pids: deploy/hfleet_ports.py, shared with the
# quickstart's scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'deploy'))
from hfleet_ports import free_port, listener_pids  # noqa: E402,F401


class PrivatePostgres:
    """A PostgreSQL cluster in a private directory, on a unix socket there."""

    def __init__(self, root):
        self.dir = os.path.join(root, 'pg')
        self.data = os.path.join(self.dir, 'data')
        self.port = free_port()
        self.bindir = pg_bindir()
        os.makedirs(self.dir)
        self.as_user = []
        if os.geteuid() == 0:
            # initdb refuses root: the cluster belongs to the postgres user.
            pw = pwd.getpwnam('postgres')
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(root, 0o755)
            self.as_user = ['runuser', '-u', 'postgres', '--']
        subprocess.run(self.as_user + [os.path.join(self.bindir, 'initdb'), '-D', self.data,
                                       '--auth=trust', '-U', 'postgres', '-E', 'UTF8'],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.start()
        try:
            self.psql('CREATE DATABASE hfleet', db='postgres')
        except BaseException:
            self.stop('immediate')
            raise

    @property
    def conninfo(self):
        return 'host=%s port=%d user=postgres dbname=hfleet' % (self.dir, self.port)

    def start(self):
        subprocess.run(self.as_user + [os.path.join(self.bindir, 'pg_ctl'), '-D', self.data, '-w', '-l',
                                       os.path.join(self.dir, 'log'), '-o',
                                       "-k %s -p %d -c listen_addresses='' -c fsync=on" % (self.dir, self.port),
                                       'start'], check=True, stdout=subprocess.DEVNULL)

    def stop(self, mode='fast'):
        subprocess.run(self.as_user + [os.path.join(self.bindir, 'pg_ctl'), '-D', self.data, '-w',
                                       '-m', mode, 'stop'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def psql(self, sql, db='hfleet'):
        out = subprocess.run(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', self.dir,
                              '-p', str(self.port), '-U', 'postgres', '-d', db, '-c', sql],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def rows(self, sql):
        text = self.psql(sql)
        return [line.split('|') for line in text.splitlines() if line]


class Daemon:
    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, name + '.log')
        self.env = env
        self.proc = None

    def start(self):
        log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=30):
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''


# Clusters made and not yet closed.  A test class whose setUpClass raises
# after making its cluster never runs tearDownClass, and its PostgreSQL and
# daemons would outlive the test process: closed at exit instead.
_OPEN_CLUSTERS = []


@atexit.register
def _close_forgotten_clusters():
    for c in list(_OPEN_CLUSTERS):
        print('harness: closing a cluster its test did not close (%s)' % c.root, file=sys.stderr)
        if keep_files():
            c.dump_logs()
        c.close(keep=keep_files())


class Cluster:
    """A private database, a coordinator, workers, and hfctl against them."""

    def __init__(self, heartbeat='200ms', lease='3s', coordinator_set=()):
        self.root = tempfile.mkdtemp(prefix='hfleet-it-')
        try:
            self.pg = PrivatePostgres(self.root)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        _OPEN_CLUSTERS.append(self)
        self.worker_url = 'tcp://127.0.0.1:%d' % free_port()
        self.control_url = 'tcp://127.0.0.1:%d' % free_port()
        self.http_url = 'http://127.0.0.1:%d' % free_port()
        self.heartbeat = heartbeat
        self.lease = lease
        self.coordinator_set = list(coordinator_set)
        self.coordinator = None
        self.workers = {}
        self.restarts = 0
        # Tokens (issue 11): an admin token for hfctl, a worker token per
        # worker id, made on first use; each in a file of mode 0600.
        self.tokens = {}
        self.admin_token_file = None

    def coordinator_alive(self):
        return self.coordinator is not None and self.coordinator.alive()

    def token_file(self, name, role, key=None):
        """A file (mode 0600) holding a new token for name with role, made
        with hfctl token create when the coordinator runs (it learns of it
        at once), else with hf-coordinator --create-token.  key caches it:
        the same key returns the same file."""
        key = key or (name, role)
        if key in self.tokens:
            return self.tokens[key]
        if self.coordinator_alive() and self.admin_token_file:
            token = self.hfctl('token', 'create', name, '--role', role).stdout.strip()
        else:
            p = subprocess.run([COORDINATOR, '--database', self.pg.conninfo, '--log-level', 'warn',
                                '--create-token', name, '--role', role], capture_output=True, text=True,
                               timeout=60)
            if p.returncode != 0:
                raise AssertionError('hf-coordinator --create-token failed: %s%s' % (p.stdout, p.stderr))
            token = p.stdout.strip()
        path = os.path.join(self.root, 'token-%d-%s-%s' % (len(self.tokens), role, name))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(token + '\n')
        self.tokens[key] = path
        return path

    def seed_tokens(self, names, role='worker'):
        """Many tokens at once, written straight into the tokens table (as
        hf-coordinator --create-token would, hashed) before the coordinator
        starts and loads them: for tests that need a hundred worker ids.
        Returns {name: token}."""
        assert not self.coordinator_alive(), 'seed tokens before the coordinator starts'
        if not self.admin_token_file:
            self.admin_token_file = self.token_file('admin', 'admin')  # migrates the database
        out, rows = {}, []
        for name in names:
            tid = secrets.token_hex(6)
            secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode()
            out[name] = 'hft_%s_%s' % (tid, secret)
            rows.append("('%s', '%s', '%s', decode('%s', 'hex'), 'harness')" % (
                tid, name, role, hashlib.sha256(secret.encode()).hexdigest()))
        if rows:
            self.pg.psql('INSERT INTO tokens (id, name, role, hash, created_by) VALUES ' + ', '.join(rows))
        return out

    def worker_env(self, wid, token_file=None):
        """The environment of a worker daemon with id wid: its worker token."""
        env = dict(os.environ)
        env['HFLEET_WORKER_TOKEN_FILE'] = token_file or self.token_file(wid, 'worker')
        return env

    def start_coordinator(self):
        if not self.admin_token_file:
            self.admin_token_file = self.token_file('admin', 'admin')
        self.coordinator = Daemon('coordinator-%d' % self.restarts, [
            COORDINATOR, '--database', self.pg.conninfo, '--worker-listen', self.worker_url,
            '--control-listen', self.control_url, '--http-listen', self.http_url,
            '--set', 'scheduler.heartbeat=' + self.heartbeat,
            '--set', 'scheduler.lease_timeout=' + self.lease, '--log-level', 'info']
            + [a for kv in self.coordinator_set for a in ('--set', kv)], self.root).start()
        self.restarts += 1
        # Ours must be the process answering: a free port chosen earlier can
        # have been taken since by another test's coordinator.
        ports = [int(u.rsplit(':', 1)[1].split('/')[0]) for u in (self.worker_url, self.control_url,
                                                                  self.http_url)]
        pid = self.coordinator.proc.pid

        deadline = time.time() + 30
        while not all(pid in listener_pids(p) for p in ports):
            if self.coordinator.proc.poll() is not None:
                raise AssertionError('the coordinator (pid %d) exited with %s before it listened on ports '
                                     '%s; its log ends:\n%s' % (pid, self.coordinator.proc.returncode, ports,
                                                                 self.coordinator.log()[-2000:]))
            if time.time() > deadline:
                raise AssertionError('the coordinator (pid %d) does not listen on all of ports %s after 30 s; '
                                     'they are held by %s' % (pid, ports, [sorted(listener_pids(p)) for p in ports]))
            time.sleep(0.05)
        self.wait_for(lambda: self.hfctl('models', check=False).returncode == 0, 30,
                      'coordinator did not come up')
        return self.coordinator

    def start_worker(self, wid, slots=2, runner_args='', token_file=None, extra_args=(), runner_path=ARITH_RUNNER,
                     extra_env=None):
        state = os.path.join(self.root, 'state-' + wid)
        env = self.worker_env(wid, token_file)
        env.update(extra_env or {})
        runner = 'python3 %s %s' % (runner_path, runner_args)
        d = Daemon(wid, [WORKER, '--id', wid, '--coordinator-url', self.worker_url, '--state-dir', state,
                         '--slots', str(slots), '--runner', runner.strip(), '--log-level', 'info']
                   + list(extra_args),
                   self.root, env=env).start()
        self.workers[wid] = d
        return d

    def hfctl(self, *args, check=True, timeout=60, token_file=None, env=None, control=True):
        """hfctl with the admin token, or token_file's (False: none), at the
        coordinator's control address (control=False: only what args and
        env give)."""
        if token_file is None:
            token_file = self.admin_token_file
        tok = ['--token-file', token_file] if token_file else []
        if env is None:
            env = {k: v for k, v in os.environ.items() if k not in ('HFLEET_TOKEN', 'HFLEET_TOKEN_FILE')}
            env['HOME'] = self.root  # no ~/.config/hfleet/token of the person running the tests
        where = ['--control', self.control_url] if control else []
        p = subprocess.run([HFCTL] + where + tok + list(args), capture_output=True,
                           text=True, timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError('hfctl %s failed (%d): %s%s' % (' '.join(args), p.returncode, p.stdout,
                                                                 p.stderr))
        return p

    def hfctl_json(self, *args, token_file=None):
        return json.loads(self.hfctl('--json', *args, token_file=token_file).stdout)

    def metric(self, name, **labels):
        """The value of one sample of the coordinator's /metrics: name with
        exactly these labels; AssertionError when it has none."""
        with urllib.request.urlopen(self.http_url + '/metrics', timeout=10) as r:
            text = r.read().decode()
        want = ','.join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in text.splitlines():
            m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
            if m and m.group(1) == name and ','.join(sorted((m.group(2) or '').split(','))) == want:
                return float(m.group(3))
        raise AssertionError('no metric %s{%s} in /metrics' % (name, want))

    def wait_connected(self, *worker_ids, timeout=60):
        """Until hfctl workers lists every one of worker_ids as connected (a
        submit needs a connected worker that can run it: on a loaded
        machine a worker just started may not have registered yet)."""
        self.wait_for(lambda: set(worker_ids) <= {w['worker_id'] for w in self.hfctl_json('workers')
                                                  if w.get('connected')},
                      timeout, ' and '.join(worker_ids) + ' to register')

    @staticmethod
    def wait_for(pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if pred():
                    return
            except Exception:  # the thing is still coming up
                pass
            time.sleep(0.1)
        raise AssertionError('timed out: ' + what)

    def close(self, keep=False):
        if self in _OPEN_CLUSTERS:
            _OPEN_CLUSTERS.remove(self)
        for d in list(self.workers.values()) + ([self.coordinator] if self.coordinator else []):
            d.stop()
        self.pg.stop('immediate')
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def dump_logs(self):
        for d in list(self.workers.values()) + ([self.coordinator] if self.coordinator else []):
            print('----- %s -----' % d.name)
            print(d.log()[-6000:])


def keep_files():
    """HF_KEEP=1 keeps a test's directory and prints its daemons' logs."""
    return bool(os.environ.get('HF_KEEP'))


@contextlib.contextmanager
def cluster(**kwargs):
    """A Cluster for the length of a with block: its daemons' logs are
    printed when the block fails (or with HF_KEEP), and everything is
    stopped and removed at the end."""
    c = Cluster(**kwargs)
    try:
        yield c
    except BaseException:
        c.dump_logs()
        c.close(keep=keep_files())
        raise
    if keep_files():
        c.dump_logs()
    c.close(keep=keep_files())


# What a sanitizer writes into a daemon's log when it finds something.
SANITIZER_MARKS = ('ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer', 'ERROR: UndefinedBehaviorSanitizer')


def sanitizer_lines(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


class ClusterCase(unittest.TestCase):
    """One Cluster per class (cluster_kwargs), its coordinator started, and
    started again before a test when an earlier one stopped it.  At the end
    every daemon is stopped first (a sanitizer reports leaks at exit), the
    logs are printed when a test failed (or with HF_KEEP), and a sanitizer's
    report in any log fails the class."""

    cluster_kwargs = {}

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(**cls.cluster_kwargs)
        cls.c.start_coordinator()
        cls._ok = True

    @classmethod
    def tearDownClass(cls):
        daemons = list(cls.c.workers.values()) + [cls.c.coordinator]
        for d in daemons:
            d.stop()
        reports = [(d.name, line) for d in daemons for line in sanitizer_lines(d.log())]
        if not cls._ok or reports or keep_files():
            cls.c.dump_logs()
        cls.c.close(keep=keep_files())
        if reports:
            raise AssertionError('sanitizer reports: %r' % reports[:5])

    def setUp(self):
        if not self.c.coordinator_alive():
            self.c.start_coordinator()

    def run(self, result=None):
        result = super().run(result)
        if result is not None and not result.wasSuccessful():
            type(self)._ok = False
        return result


class PgSession:
    """A PostgreSQL session of its own (psql over a pipe, as postgres, in
    the cluster's database) holding what take() locked until release():
    a statement of the coordinator that needs the same lock waits, so a
    test can hold it "between two steps" without timing.  take() sends
    the statement in a transaction and waits until it is granted unless
    wait=False (then granted() waits later)."""

    def __init__(self, c):
        pg = c.pg
        self.p = subprocess.Popen(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', pg.dir,
                                   '-p', str(pg.port), '-U', 'postgres', '-d', 'hfleet'],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def take(self, sql, wait=True):
        self.p.stdin.write("BEGIN;\n%s;\nSELECT 'granted';\n" % sql)
        self.p.stdin.flush()
        if wait:
            self.granted()

    def granted(self):
        while True:
            line = self.p.stdout.readline()
            assert line, 'the session ended before its lock was granted'
            if line.strip() == 'granted':
                return

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write('ROLLBACK;\n')
            self.p.stdin.close()
            self.p.wait(30)
            self.p.stdout.close()
