#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Only the fleet gets in (issue 11): tokens, roles and the audit against a
real coordinator, real workers, hfctl and a private PostgreSQL.

A worker without a token, with a wrong one or a revoked one is refused; a
worker token acts only as its own worker id and never on the control port;
a viewer cannot submit; a submitter cannot cancel another's job or drain,
but can cancel its own; the job's submitter is the token's name; tokens are
stored hashed; token list and revoke work and a revoked token stops at
once; the audit shows every action; a protocol-1 peer is told to upgrade.
"""
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

OLDPEER = os.environ.get('HF_OLDPEER', os.path.join(harness.BUILD, 'tests', 'integration', 'hf-oldpeer'))


def read(path):
    with open(path) as f:
        return f.read().strip()


def pipelined_whoami(url, tokens):
    """WhoAmI requests, one per token, sent in one segment of one SP
    connection (docs/protocol.md, "Connections"); their replies' payloads."""
    host, port = url.split('://', 1)[1].rsplit(':', 1)

    def field(num, data):
        n, key, out = len(data), num << 3 | 2, b''
        for v in (key, n):
            while v >= 0x80:
                out += bytes([v & 0x7f | 0x80])
                v >>= 7
            out += bytes([v])
        return out + data

    frames = b''
    for i, t in enumerate(tokens):
        # Envelope: protocol_version (1) = 2, token (2), whoami (50) empty.
        body = struct.pack('>I', 0x80000001 + i) + b'\x08\x02' + field(2, t.encode()) + field(50, b'')
        frames += struct.pack('>Q', len(body)) + body
    with socket.create_connection((host.strip('[]'), int(port)), timeout=30) as s:
        s.sendall(b'\x00SP\x00\x00\x30\x00\x00' + frames)
        buf = b''
        replies = []
        while len(replies) < len(tokens):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) >= 8 and not replies and not buf.startswith(b'\x00SP\x00'):
                raise AssertionError('no SP header: %r' % buf[:8])
            while len(buf) >= 16:
                (n,) = struct.unpack('>Q', buf[8:16])
                if len(buf) < 16 + n:
                    break
                replies.append(buf[16 + 4:16 + n])
                buf = buf[:8] + buf[16 + n:]
        return replies


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = harness.Cluster()
        cls.c.start_coordinator()
        cls.c.start_worker('w1', slots=2)
        cls.c.wait_for(lambda: len(cls.c.hfctl_json('workers')) == 1, 60, 'the worker to register')
        cls.viewer = cls.c.token_file('vera', 'viewer')
        cls.alice = cls.c.token_file('alice', 'submitter')
        cls.bob = cls.c.token_file('bob', 'submitter')

    @classmethod
    def tearDownClass(cls):
        # Stopped first, so that a sanitizer build's exit report (leaks) is in the log.
        cls.c.coordinator.stop()
        log = cls.c.coordinator.log()
        if not getattr(cls, 'all_ok', True) or os.environ.get('HF_KEEP'):
            cls.c.dump_logs()
        cls.c.close(keep=bool(os.environ.get('HF_KEEP')))
        for bad in ('runtime error', 'Sanitizer'):
            if bad in log:
                raise AssertionError('the coordinator reported "%s":\n%s' % (bad, log[-8000:]))

    def setUp(self):
        self._ok = False

    def tearDown(self):
        if not self._ok:
            type(self).all_ok = False

    def submit(self, token_file, *extra):
        """A job that stays queued: no worker has a CUDA device."""
        return self.c.hfctl_json('submit', '--models', 'bert', '--backends', 'cuda', '--allow-waiting',
                                 '--priority', '-100', *extra, token_file=token_file)

    def start_worker_expect_refusal(self, wid, token_file, text):
        d = self.c.start_worker(wid, token_file=token_file)
        self.c.wait_for(lambda: not d.alive(), 30, 'worker %s to be refused' % wid)
        self.assertEqual(d.proc.returncode, 1, d.log())
        self.assertIn(text, d.log())
        self.assertNotIn(wid, [w['worker_id'] for w in self.c.hfctl_json('workers')])

    def test_workers_without_a_valid_token_are_refused(self):
        # No token at all.
        d = harness.Daemon('none', [harness.WORKER, '--id', 'none', '--coordinator-url', self.c.worker_url,
                                    '--state-dir', os.path.join(self.c.root, 'state-none'),
                                    '--runner', 'python3 ' + harness.ARITH_RUNNER], self.c.root,
                           env={k: v for k, v in os.environ.items() if k != 'HFLEET_WORKER_TOKEN_FILE'}).start()
        self.c.wait_for(lambda: not d.alive(), 30, 'the worker without a token to be refused')
        self.assertEqual(d.proc.returncode, 1)
        self.assertIn('no token', d.log())
        self.assertIn('worker.token_file', d.log())
        # A wrong secret for a real token id.
        good = read(self.c.token_file('wrong', 'worker'))
        bad = os.path.join(self.c.root, 'wrong-token')
        fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (good[:-2] + ('AA' if good[-2:] != 'AA' else 'QA')).encode())
        os.close(fd)
        self.start_worker_expect_refusal('wrong', bad, 'is unknown or revoked')
        # A malformed one.
        junk = os.path.join(self.c.root, 'junk-token')
        fd = os.open(junk, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b'hello')
        os.close(fd)
        self.start_worker_expect_refusal('junk', junk, 'malformed token')
        # A revoked one.
        revoked = self.c.token_file('gone', 'worker')
        self.c.hfctl('token', 'revoke', 'gone')
        self.start_worker_expect_refusal('gone', revoked, 'is unknown or revoked')
        self._ok = True

    def test_worker_tokens_act_only_as_their_own_worker(self):
        # w1's token used for another id.
        self.start_worker_expect_refusal('w9', self.c.token_file('w1', 'worker'),
                                         'may not act as worker "w9"')
        # A control token on the worker port.
        self.start_worker_expect_refusal('alice', self.alice, 'the worker port needs the worker role')
        # A worker token on the control port.
        p = self.c.hfctl('jobs', check=False, token_file=self.c.token_file('w1', 'worker'))
        self.assertEqual(p.returncode, 1)
        self.assertIn('does not take worker tokens', p.stderr)
        self.assertIn('w1', [w['worker_id'] for w in self.c.hfctl_json('workers')])
        self._ok = True

    def test_roles(self):
        # A viewer reads but cannot submit; the refusal names the role needed.
        self.assertEqual(self.c.hfctl_json('whoami', token_file=self.viewer)['role'], 'viewer')
        self.c.hfctl('jobs', token_file=self.viewer)
        p = self.c.hfctl('submit', '--models', 'bert', '--backends', 'cpu', check=False, token_file=self.viewer)
        self.assertEqual(p.returncode, 1)
        self.assertIn('submit needs the submitter role', p.stderr)
        # The job is the token's, whatever --submitter says.
        job = int(self.submit(self.alice, '--submitter', 'mallory')['job_id'])
        self.assertEqual(self.c.pg.psql('SELECT submitter FROM jobs WHERE id = %d' % job), 'alice')
        self.assertEqual(self.c.hfctl_json('status', str(job))['submitter'], 'alice')
        # Bob may not cancel or retry alice's job, nor drain.
        for cmd in (('cancel', str(job)), ('retry', str(job))):
            p = self.c.hfctl(*cmd, check=False, token_file=self.bob)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn('needs the admin role', p.stderr)
        self.assertEqual(self.c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job), 'running')
        p = self.c.hfctl('drain', 'w1', check=False, token_file=self.bob)
        self.assertEqual(p.returncode, 1)
        self.assertIn('drain needs the admin role', p.stderr)
        p = self.c.hfctl('token', 'list', check=False, token_file=self.bob)
        self.assertIn('token list needs the admin role', p.stderr)
        # Alice cancels her own.
        self.c.hfctl('cancel', str(job), token_file=self.alice)
        self.assertEqual(self.c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job), 'cancelled')
        # An admin cancels anyone's.
        other = int(self.submit(self.bob)['job_id'])
        self.c.hfctl('cancel', str(other))
        self.assertEqual(self.c.pg.psql('SELECT state FROM jobs WHERE id = %d' % other), 'cancelled')
        self._ok = True

    def test_tokens_are_stored_hashed_listed_and_revoked_at_once(self):
        path = self.c.token_file('carol', 'submitter')
        token = read(path)
        tid, secret = token[4:16], token[17:]
        rows = self.c.pg.rows("SELECT id, name, role, encode(hash, 'hex'), created_by FROM tokens"
                              " WHERE id = '%s'" % tid)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0][1:3], ['carol', 'submitter'])
        self.assertEqual(rows[0][3], hashlib.sha256(secret.encode()).hexdigest())
        self.assertEqual(rows[0][4], 'admin')
        dump = self.c.pg.psql("SELECT string_agg(t::text, ' ') FROM tokens t")
        self.assertNotIn(secret, dump)
        self.assertNotIn(secret[:20], dump)
        # In use: listed with its last use.
        self.assertEqual(self.c.hfctl_json('whoami', token_file=path)['name'], 'carol')
        # The coordinator keeps the secret that matched (a repeat costs a
        # compare, not a hash): the same id with another secret is still
        # refused, and the right one still taken, in either order.
        forged = os.path.join(self.c.root, 'carol-forged.token')
        other = ('A' if secret[0] != 'A' else 'B') + secret[1:]
        with open(os.open(forged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as f:
            f.write('hft_%s_%s\n' % (tid, other))
        for _ in range(2):
            p = self.c.hfctl('whoami', check=False, token_file=forged)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn('not authenticated', p.stderr)
            self.assertEqual(self.c.hfctl_json('whoami', token_file=path)['name'], 'carol')
        listed = {t['id']: t for t in self.c.hfctl_json('token', 'list')}
        self.assertIn(tid, listed)
        self.assertEqual(listed[tid]['name'], 'carol')
        self.c.wait_for(lambda: {t['id']: t for t in self.c.hfctl_json('token', 'list')}[tid]['last_used_at'],
                        10, 'last use to be recorded')
        # Several tokens used at once: each one's use is written (the
        # coordinator lists the uses to write, one write at a time).
        # Their three requests come in one segment of one connection, so
        # the coordinator takes them in one turn: the first use starts a
        # write, the others wait for it and go in the next.
        files = [self.c.token_file(n, 'viewer') for n in ('dave', 'erin', 'frank')]
        replies = pipelined_whoami(self.c.control_url, [read(f) for f in files])
        self.assertEqual(len(replies), 3)
        for name, r in zip(('dave', 'erin', 'frank'), replies):
            self.assertIn(name.encode(), r)  # its WhoAmIReply, not an error
        fresh = [read(f)[4:16] for f in files]
        self.c.wait_for(lambda: all({t['id']: t for t in self.c.hfctl_json('token', 'list')}[i]['last_used_at']
                                    for i in fresh), 10, 'the fresh tokens\' uses to be recorded')
        # Revoked: refused at once (its kept secret goes with it), and
        # listed only with --all.
        out = self.c.hfctl_json('token', 'revoke', tid)
        self.assertEqual(out['revoked'], 1)
        for _ in range(2):
            p = self.c.hfctl('jobs', check=False, token_file=path)
            self.assertEqual(p.returncode, 1)
            self.assertIn('not authenticated', p.stderr)
        self.assertNotIn(tid, [t['id'] for t in self.c.hfctl_json('token', 'list')])
        gone = [t for t in self.c.hfctl_json('token', 'list', '--all') if t['id'] == tid]
        self.assertTrue(gone and gone[0]['revoked_at'])
        p = self.c.hfctl('token', 'revoke', tid, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('no live token', p.stderr)
        self._ok = True

    def test_a_running_worker_whose_token_is_revoked_stops(self):
        path = self.c.token_file('w5', 'worker')
        d = self.c.start_worker('w5', token_file=path)
        self.c.wait_for(lambda: 'w5' in [w['worker_id'] for w in self.c.hfctl_json('workers')], 30,
                        'w5 to register')
        self.c.hfctl('token', 'revoke', read(path)[4:16])
        self.c.wait_for(lambda: not d.alive(), 30, 'w5 to stop')
        self.assertEqual(d.proc.returncode, 1)
        self.assertIn('unknown or revoked', d.log())
        self._ok = True

    def test_hfctl_token_sources(self):
        # No token anywhere: a clear message saying where to put one.
        p = self.c.hfctl('jobs', check=False, token_file=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('no token', p.stderr)
        self.assertIn('~/.config/hfleet/token', p.stderr)
        # A token file others may read is refused, like ssh keys.
        loose = os.path.join(self.c.root, 'loose-token')
        with open(loose, 'w') as f:
            f.write(read(self.viewer))
        os.chmod(loose, 0o644)
        p = self.c.hfctl('jobs', check=False, token_file=loose)
        self.assertEqual(p.returncode, 1)
        self.assertIn('readable by its owner only', p.stderr)
        # $HFLEET_TOKEN_FILE, $HFLEET_TOKEN and ~/.config/hfleet/token.
        env = dict(os.environ, HOME=self.c.root, HFLEET_TOKEN_FILE=self.viewer)
        env.pop('HFLEET_TOKEN', None)
        self.assertEqual(json.loads(self.c.hfctl('--json', 'whoami', token_file=False, env=env).stdout)['name'],
                         'vera')
        env = dict(os.environ, HOME=self.c.root, HFLEET_TOKEN=read(self.alice))
        env.pop('HFLEET_TOKEN_FILE', None)
        self.assertEqual(json.loads(self.c.hfctl('--json', 'whoami', token_file=False, env=env).stdout)['name'],
                         'alice')
        home = os.path.join(self.c.root, 'home')
        os.makedirs(os.path.join(home, '.config', 'hfleet'))
        fd = os.open(os.path.join(home, '.config', 'hfleet', 'token'), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (read(self.bob) + '\n').encode())
        os.close(fd)
        env = {k: v for k, v in os.environ.items() if k not in ('HFLEET_TOKEN', 'HFLEET_TOKEN_FILE')}
        env['HOME'] = home
        self.assertEqual(json.loads(self.c.hfctl('--json', 'whoami', token_file=False, env=env).stdout)['name'],
                         'bob')
        self._ok = True

    def test_old_protocol_peer_is_told_to_upgrade(self):
        p = subprocess.run([OLDPEER, self.c.worker_url, '1'], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('upgrade hf-worker or hfctl', p.stdout)
        self._ok = True

    def test_zz_audit_shows_each_action(self):
        dave = self.c.token_file('dave', 'submitter')
        job = int(self.submit(dave)['job_id'])
        self.c.hfctl('retry', str(job), token_file=dave)
        self.c.hfctl('cancel', str(job), token_file=dave)
        self.c.hfctl('drain', 'w1')
        self.c.hfctl('undrain', 'w1')
        tmp = self.c.token_file('temp', 'viewer')
        self.c.hfctl('token', 'revoke', read(tmp)[4:16])
        entries = self.c.hfctl_json('audit', '--limit', '1000')
        seen = {(e['actor'], e['action'], e['target']) for e in entries}
        for want in (('dave', 'submit', 'job %d' % job), ('dave', 'cancel', 'job %d' % job),
                     ('dave', 'retry', 'job %d' % job), ('admin', 'drain', 'worker w1'),
                     ('admin', 'undrain', 'worker w1'), ('admin', 'token-create', 'token ' + read(tmp)[4:16]),
                     ('admin', 'token-revoke', 'token ' + read(tmp)[4:16]),
                     ('hf-coordinator --create-token', 'token-create', 'token ' + read(self.c.admin_token_file)[4:16])):
            self.assertIn(want, seen)
        # Refused actions changed nothing, so they are not in it.
        self.assertNotIn(('bob', 'cancel'), {(e['actor'], e['action']) for e in entries})
        by_job = self.c.hfctl_json('audit', '--job', str(job))
        self.assertEqual(sorted(e['action'] for e in by_job), ['cancel', 'retry', 'submit'])
        self.assertTrue(all(e['role'] == 'submitter' and e['at'] > time.time() - 600 for e in by_job))
        self.assertIn('dave', self.c.hfctl('audit', '--job', str(job)).stdout)
        self._ok = True


class AuthSwitchTest(unittest.TestCase):
    def test_auth_required_off_lets_requests_without_a_token_act_as_admin(self):
        with harness.cluster(coordinator_set=('auth.required=false',)) as c:
            c.start_coordinator()
            self.assertIn('auth.required is off', c.coordinator.log())
            me = c.hfctl_json('whoami', token_file=False)
            self.assertEqual((me['name'], me['role']), ('anonymous', 'admin'))
            # A token given is still checked.
            junk = os.path.join(c.root, 'junk')
            fd = os.open(junk, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b'hft_000000000000_' + b'A' * 43)
            os.close(fd)
            p = c.hfctl('jobs', check=False, token_file=junk)
            self.assertIn('unknown or revoked', p.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
