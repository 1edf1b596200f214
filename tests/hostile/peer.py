# SPDX-License-Identifier: MIT
"""The hostile peer and the checks made after each attack.

SpConn speaks nng's SP-over-TCP framing on a plain socket, so that every
byte of it can be got wrong on purpose: after connecting each side sends
8 bytes, "\\x00SP\\x00", the 16-bit big-endian protocol id (REQ 48, REP 49)
and two zero bytes; then every message is a 64-bit big-endian length and
that many bytes.  A REQ message starts with a 32-bit big-endian request id
whose high bit is set; the REP reply starts with the same id.

HostileCase is the base of the suite's test classes: one private cluster
(PostgreSQL, hf-coordinator, one well-behaved hf-worker running the arith
runner) per class, restarted when an attack killed it; after each attack
check_after() asserts that the coordinator is alive and answers hfctl, that
no sanitizer reported anything in the daemons' logs since the attack began,
and that its RSS grew by at most a bound; check_job() then runs a small job
on the well-behaved worker and asserts every task ends with exactly one
deciding result.
"""
import contextlib
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'integration'))
import harness  # noqa: E402
import wire  # noqa: E402

SP_REQ, SP_REP = 48, 49

# The settings this suite wants the coordinator to run with: short
# timeouts and a small connection cap, so that the fairness attacks finish
# in seconds.  A setting the coordinator under test does not know (its
# --print-config does not list it) is left out, so a coordinator from
# before issue 18 still starts; the tests that need one say so when it is
# missing.  Names: the first of each group that the coordinator lists is
# used.
# Short limits so that the connection attacks see them act within a test
# (docs/operations.md, [connections]); the coordinator must know each.
WANTED_SETTINGS = [
    ('connections.idle_timeout', '3s'),
    ('connections.max_per_port', '64'),
    ('connections.reply_timeout', '3s'),
    ('connections.handshake_timeout', '2s'),
    # Telemetry reaches the database every second, so a message that stops
    # it storing shows within the test.
    ('telemetry.sample_interval', '1s'),
    # The attacks go past authentication, as a peer holding a valid token
    # could: they test what lies behind it (framing, validation, bounds,
    # fairness, ownership).  That an unauthenticated peer is refused is
    # tests/integration/test_auth.py's.
    ('auth.required', 'false'),
]

SANITIZER_MARKS = harness.SANITIZER_MARKS

# How much a coordinator's resident memory may grow over one attack group.
RSS_BOUND_MB = 128
RSS_BOUND_ASAN_MB = 512

GOOD_LABEL = 'hostile-suite=good'


_LIMITS = None


def hf_limit(name):
    """The value of a limit of common/hf_limits.h (an integer constant
    expression of numbers and other limits), so the suite asks what the
    code enforces rather than keeping a copy that can drift."""
    global _LIMITS
    if _LIMITS is None:
        with open(os.path.join(harness.SOURCE, 'common', 'hf_limits.h')) as f:
            text = f.read()
        _LIMITS = dict(re.findall(r'^#define\s+(HF_[A-Z0-9_]+)\s+([^/\n]+?)\s*(?:/\*.*)?$', text, re.M))
    expr = _LIMITS[name]
    expr = re.sub(r'\b(HF_[A-Z0-9_]+)\b', lambda m: '(%d)' % hf_limit(m.group(1)), expr)
    expr = re.sub(r'\b(\d+)[uU]?[lL]*\b', r'\1', expr)
    if not re.fullmatch(r'[\d\s()+\-*<>]+', expr):
        raise ValueError('%s is not an integer constant: %r' % (name, _LIMITS[name]))
    return int(eval(expr))  # digits, parentheses and + - * << only


def parse_url(url):
    m = re.match(r'tcp://([^:]+):(\d+)$', url)
    return m.group(1), int(m.group(2))


def sp_header(proto):
    return b'\x00SP\x00' + struct.pack('>H', proto) + b'\x00\x00'


class PeerClosed(Exception):
    """The coordinator closed the connection."""


class SpConn:
    """One TCP connection speaking (or mis-speaking) nng's SP framing."""

    next_id = 0x80000001

    def __init__(self, url, timeout=10.0, rcvbuf=None):
        self.addr = parse_url(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # A small window: the replies it does not read soon back up
            # into the coordinator.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.addr)
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(timeout)
        self.peer_header = None

    # -- raw bytes --
    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                raise PeerClosed('connection reset after %d of %d bytes' % (len(buf), n))
            if not chunk:
                raise PeerClosed('closed after %d of %d bytes' % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def closed_by_peer(self, timeout):
        """True when the other side closes (or resets) the connection
        within timeout seconds; whatever it sends meanwhile is read and
        dropped."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
        return False

    # -- SP --
    def handshake(self, proto=SP_REQ, expect=SP_REP):
        self.send_raw(sp_header(proto))
        self.peer_header = self.recv_exact(8)
        if expect is not None and self.peer_header != sp_header(expect):
            raise AssertionError('unexpected SP header %r' % self.peer_header)
        return self

    def send_frame(self, body):
        self.send_raw(struct.pack('>Q', len(body)) + body)

    def send_request(self, payload, req_id=None):
        if req_id is None:
            req_id = SpConn.next_id
            SpConn.next_id = 0x80000001 + ((SpConn.next_id + 1 - 0x80000001) % 0x7ffffff0)
        self.send_frame(struct.pack('>I', req_id) + payload)
        return req_id

    def recv_frame(self, timeout=None, limit=256 << 20):
        (n,) = struct.unpack('>Q', self.recv_exact(8, timeout))
        if n > limit:
            raise AssertionError('a reply of %d bytes' % n)
        return self.recv_exact(n, timeout)

    def recv_reply(self, timeout=None):
        """(request id, payload) of the next reply."""
        body = self.recv_frame(timeout)
        if len(body) < 4:
            raise AssertionError('a reply of %d bytes has no request id' % len(body))
        return struct.unpack('>I', body[:4])[0], body[4:]

    def call(self, payload, timeout=30.0):
        """Sends one request and returns its decoded reply."""
        rid = self.send_request(payload)
        while True:
            got, body = self.recv_reply(timeout)
            if got == rid:
                return wire.Reply(body)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- a worker that speaks the protocol by hand (the integration tests'
# raw peers: test_dispatch, test_lease_ahead, test_reserve) ----

def worker_conn(url, timeout=10.0):
    """A connection to the worker port, its SP handshake done."""
    s = SpConn(url, timeout=timeout)
    s.handshake()
    return s


def register_worker(s, worker_id, labels=(), slots=1, leases_ahead=None):
    """Registers worker_id with one cpu device of `slots` slots and the
    labels given as (key, value) pairs; returns the session the reply
    gives, or raises AssertionError naming the reply it got instead."""
    r = s.call(wire.envelope('register', wire.register(
        worker_id=worker_id, labels=[wire.key_value(k, v) for k, v in labels],
        devices=[wire.device(index=0, slots=slots)], leases_ahead=leases_ahead)))
    if r.kind != 'register_reply':
        raise AssertionError('registering %s: %r' % (worker_id, r))
    return wire.first(r.body, 7, 0)  # RegisterReply.session


def poll_worker(s, worker_id, session, free, ahead=None, ahead_benchmarks=None, running=(), timeout=10.0):
    """One poll of device 0 with `free` slots free (and what it asks ahead,
    and the (task, attempt) pairs it says are running); returns the reply's
    assignments, each decoded into its fields, or raises AssertionError
    naming the reply when it is not a poll reply."""
    r = s.call(wire.envelope('poll', wire.poll(
        worker_id, free=[wire.device_free(index=0, free_slots=free, ahead=ahead,
                                          ahead_benchmarks=ahead_benchmarks)],
        session=session, running=[wire.task_ref(t, a) for t, a in running])), timeout=timeout)
    if r.kind != 'poll_reply':
        raise AssertionError('polling as %s: %r' % (worker_id, r))
    return [wire.decode(a) for a in wire.all_of(r.body, 1)]


# The daemons run with the file limit a service gets by default (systemd's
# soft limit): the test process raises its own to open many connections.
DAEMON_FD_LIMIT = 1024


@contextlib.contextmanager
def daemon_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = DAEMON_FD_LIMIT if hard == resource.RLIM_INFINITY else min(DAEMON_FD_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def raise_fd_limit(want=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def coordinator_settings():
    """The settings hf-coordinator --print-config lists, name -> value."""
    p = subprocess.run([harness.COORDINATOR, '--print-config'], capture_output=True, text=True,
                       timeout=30)
    known, section = {}, ''
    for line in p.stdout.splitlines():
        m = re.match(r'\s*\[([a-z_0-9]+)\]\s*$', line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r'\s*([a-z_0-9]+)\s*=\s*(.*)$', line)
        if m and section:
            known[section + '.' + m.group(1)] = m.group(2).strip()
    return known


def chosen_settings(known):
    """(--set arguments, name -> (name, value)) of WANTED_SETTINGS; a setting
    the coordinator does not know is an error, not a test skipped."""
    sets, chosen = [], {}
    for name, value in WANTED_SETTINGS:
        if name not in known:
            raise AssertionError('hf-coordinator has no setting %s (--print-config)' % name)
        sets.append('%s=%s' % (name, value))
        chosen[name] = (name, value)
    return sets, chosen


# Other ways an error message may name a field than its proto name.
FIELD_ALIASES = {
    'seq_len': ('sequence length',),
    'seq_lens': ('sequence length',),
    'max_retries': ('retries',),
    'min_compute_capability': ('compute capability',),
    'free': ('free slot', 'free-slot'),
    'timeout_s': ('timeout',),
    'results': ('result',),
}


def names_field(message, field):
    """Whether message names field: its proto name, with spaces for
    underscores, singular or plural, or one of its FIELD_ALIASES."""
    text = message.lower()
    names = [field, field.replace('_', ' ')]
    names += [n[:-1] for n in names if n.endswith('s')]
    names += list(FIELD_ALIASES.get(field, ()))
    return any(n in text for n in names)


def vm_rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except OSError:
        return -1


def is_asan(pid):
    try:
        with open('/proc/%d/maps' % pid) as f:
            return 'libasan' in f.read()
    except OSError:
        return False


sanitizer_lines = harness.sanitizer_lines


def add_asan_quarantine_limit():
    """A small ASan quarantine, so freed memory does not count as growth."""
    opts = os.environ.get('ASAN_OPTIONS', '')
    if 'quarantine_size_mb' not in opts:
        os.environ['ASAN_OPTIONS'] = (opts + ':' if opts else '') + 'quarantine_size_mb=32'


class HostileCase(unittest.TestCase):
    """One cluster per class: a coordinator and the well-behaved worker
    "good" (label hostile-suite=good, 2 slots, the arith runner)."""

    good_runner_args = ''
    good_slots = 2

    @classmethod
    def setUpClass(cls):
        add_asan_quarantine_limit()
        cls.fd_limit = raise_fd_limit()
        cls.known = coordinator_settings()
        sets, cls.settings = chosen_settings(cls.known)
        cls.c = harness.Cluster(heartbeat='200ms', lease='3s', coordinator_set=sets)
        cls.crashes = []
        cls.failed = False
        cls.hung = False
        try:
            with daemon_fd_limit():
                cls.c.start_coordinator()
                cls.start_good_worker()
            cls.c.wait_for(lambda: any(w['worker_id'] == 'good' and w['devices']
                                       for w in cls.c.hfctl_json('workers')),
                           60, 'the well-behaved worker to register')
        except BaseException:
            cls.c.dump_logs()
            cls.c.close()
            raise

    @classmethod
    def start_good_worker(cls):
        state = os.path.join(cls.c.root, 'state-good')
        runner = ('python3 %s %s' % (harness.ARITH_RUNNER, cls.good_runner_args)).strip()
        d = harness.Daemon('good-%d' % len([k for k in cls.c.workers if k.startswith('good')]), [
            harness.WORKER, '--id', 'good', '--coordinator-url', cls.c.worker_url, '--state-dir', state,
            '--slots', str(cls.good_slots), '--runner', runner, '--label', GOOD_LABEL,
            '--log-level', 'info'], cls.c.root).start()
        cls.c.workers[d.name] = d
        cls.good = d

    @classmethod
    def tearDownClass(cls):
        # Stopped first: a sanitizer reports leaks at exit.
        for d in list(cls.c.workers.values()) + [cls.c.coordinator]:
            if d is not None:
                d.stop()
        reports = ['%s: %s' % (d.name, line) for d in list(cls.c.workers.values()) + [cls.c.coordinator]
                   if d is not None for line in sanitizer_lines(d.log())]
        if cls.failed or reports or harness.keep_files():
            cls.c.dump_logs()
        if cls.crashes:
            print('hostile: the coordinator died or hung during: %s' % ', '.join(cls.crashes))
        cls.c.close(keep=harness.keep_files())
        if reports:
            raise AssertionError('sanitizer reports in the daemons\' logs:\n  ' + '\n  '.join(reports[:20]))

    def setUp(self):
        self.conns = []
        c = self.c
        # An earlier attack may have killed a daemon: start it again, so
        # that each attack is judged on its own.
        if type(self).hung and c.coordinator.alive():
            # Alive but answering nothing (under ASan a crash can hang in
            # the sanitizer's own handler): ours to kill, by its pid.
            c.coordinator.kill(signal.SIGKILL)
            c.coordinator.proc.wait(30)
        type(self).hung = False
        restarted = False
        with daemon_fd_limit():
            if not c.coordinator.alive():
                c.start_coordinator()
                restarted = True
            if not self.good.alive():
                type(self).start_good_worker()
                restarted = True
        if restarted:
            c.wait_for(lambda: any(w['worker_id'] == 'good' and w['devices'] for w in c.hfctl_json('workers')),
                       60, 'the well-behaved worker to register again')
        self.coord_pid = c.coordinator.proc.pid
        self.log_marks = dict((d.name, len(d.log())) for d in self.daemons())
        self.rss_before = vm_rss_kb(self.coord_pid)

    def tearDown(self):
        for conn in self.conns:
            conn.close()

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            type(self).failed = True
        return result

    def daemons(self):
        return [d for d in list(self.c.workers.values()) + [self.c.coordinator] if d is not None]

    # -- the hostile peer --
    def connect(self, port='worker', handshake=True, proto=SP_REQ, timeout=10.0, rcvbuf=None):
        url = self.c.worker_url if port == 'worker' else self.c.control_url
        conn = SpConn(url, timeout=timeout, rcvbuf=rcvbuf)
        self.conns.append(conn)
        if handshake:
            conn.handshake(proto)
        return conn

    def call(self, body_name, body, port='worker', protocol_version=wire.PROTOCOL_VERSION, timeout=60.0):
        """One request on a fresh connection; its decoded reply."""
        conn = self.connect(port)
        try:
            return conn.call(wire.envelope(body_name, body, protocol_version), timeout=timeout)
        finally:
            conn.close()

    # -- the checks --
    def assert_alive(self, what):
        c = self.c
        if not c.coordinator.alive():
            type(self).crashes.append(what)
            self.fail('%s: the coordinator died (exit status %s); its log ends:\n%s'
                      % (what, c.coordinator.proc.returncode, c.coordinator.log()[-3000:]))
        # Answered at least once within a generous time (a coordinator may
        # need a few seconds to shed a flood); never a tight deadline.
        deadline = time.time() + 90
        while True:
            p = c.hfctl('--request-timeout', '20s', 'models', check=False, timeout=90)
            if p.returncode == 0 or time.time() > deadline:
                break
            time.sleep(1)
        if p.returncode != 0:
            type(self).hung = True
            type(self).crashes.append(what + ' (hung)')
            self.fail('%s: hfctl models failed for 90 s: %s' % (what, p.stderr))

    def assert_no_sanitizer_report(self, what):
        for d in self.daemons():
            text = d.log()[self.log_marks.get(d.name, 0):]
            found = sanitizer_lines(text)
            self.assertEqual(found, [], '%s: %s reported:\n%s' % (what, d.name, text[-4000:]))

    def assert_rss_bounded(self, what):
        if not self.c.coordinator.alive() or self.c.coordinator.proc.pid != self.coord_pid:
            return
        after = vm_rss_kb(self.coord_pid)
        bound = RSS_BOUND_ASAN_MB if is_asan(self.coord_pid) else RSS_BOUND_MB
        grew = (after - self.rss_before) / 1024.0
        if grew >= 1:
            print('hostile: %s: coordinator RSS %d -> %d kB' % (what, self.rss_before, after), flush=True)
        self.assertLess(grew, bound, '%s: the coordinator grew by %.0f MB (bound %d MB)' % (what, grew, bound))

    def check_after(self, what):
        """Alive and answering, no sanitizer report, memory bounded."""
        self.assert_alive(what)
        self.assert_no_sanitizer_report(what)
        self.assert_rss_bounded(what)

    def check_job(self, what, models='bert,gpt2,t5,vit', timeout=120):
        """A small job for the well-behaved worker completes, each task
        with exactly one deciding result, decided by that worker."""
        c = self.c
        out = c.hfctl_json('submit', '--models', models, '--backends', 'cpu', '--label', GOOD_LABEL,
                           '--name', 'check after ' + what[:60])
        job, n = int(out['job_id']), int(out['task_count'])
        c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', timeout,
                   '%s: the well-behaved worker\'s job %d to finish' % (what, job))
        pg = c.pg
        self.assertEqual(pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state IN ('queued', 'leased')"
                                 % job), '0')
        bad = pg.rows("""
            SELECT t.id, t.state, count(r.id) FILTER (WHERE NOT r.stale AND NOT r.retried)
            FROM tasks t LEFT JOIN results r ON r.task_id = t.id
            WHERE t.job_id = %d GROUP BY t.id, t.state
            HAVING count(r.id) FILTER (WHERE NOT r.stale AND NOT r.retried) <> 1""" % job)
        self.assertEqual(bad, [], '%s: tasks without exactly one deciding result' % what)
        states = pg.rows("""SELECT t.state, r.worker_id FROM tasks t JOIN results r ON r.id = t.result_id
                            WHERE t.job_id = %d""" % job)
        self.assertEqual(len(states), n)
        for state, worker in states:
            self.assertEqual((state, worker), ('passed', 'good'), '%s: job %d' % (what, job))
        return job

    def check_all(self, what):
        self.check_after(what)
        self.check_job(what)
        self.assert_no_sanitizer_report(what)

    def assert_bad_request(self, reply, field, what=None):
        """The reply is ERR_BAD_REQUEST and its message names field."""
        what = what or field
        if reply.kind != 'error' or reply.error_code != wire.ERR_BAD_REQUEST:
            self.fail('%s: expected ERR_BAD_REQUEST naming %s, got %r' % (what, field, reply))
        if not names_field(reply.error_message, field):
            self.fail('%s: the error does not name %s: %r' % (what, field, reply))
        raw = reply.error_message_bytes
        try:
            raw.decode('utf-8')
        except UnicodeDecodeError:
            self.fail('%s: the Error message is not valid UTF-8: %r' % (what, raw))

    def assert_bad_request_or_too_big(self, reply, field, body, what=None):
        """The reply names field as assert_bad_request wants, or refuses the
        message by its size: "<body>: a <body> message of N bytes, at most
        L" (docs/protocol.md, "Receive sizes"), where N is the size of the
        body sent and that is over L."""
        what = what or field
        if reply.kind == 'error' and reply.error_code == wire.ERR_BAD_REQUEST:
            m = re.search(r'a [a-z_]+ message of (\d+) bytes, at most (\d+)', reply.error_message)
            if m and int(m.group(1)) == len(body) and int(m.group(1)) > int(m.group(2)):
                return
        self.assert_bad_request(reply, field, what)

    def register_hostile(self, worker_id, **kw):
        """Registers a well-formed hostile worker (no good label)."""
        r = self.call('register', wire.register(worker_id=worker_id, **kw))
        self.assertEqual(r.kind, 'register_reply', 'registering %s: %r' % (worker_id, r))
        return r

    def assert_telemetry_flows(self, what):
        """The well-behaved worker's telemetry still reaches the database
        (where it sends any)."""
        if 'telemetry.sample_interval' not in self.settings:
            return
        q = "SELECT count(*) FROM device_telemetry WHERE worker_id = 'good'"
        n0 = int(self.c.pg.psql(q))
        if n0 == 0:
            print('hostile: %s: the well-behaved worker sends no telemetry here; not checked' % what, flush=True)
            return
        self.c.wait_for(lambda: int(self.c.pg.psql(q)) > n0, 60,
                        '%s: the well-behaved worker\'s telemetry to be stored again' % what)

    def setting(self, name):
        """The coordinator's name and value of a wanted setting, or None."""
        return self.settings.get(name)
