#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TLS on the coordinator's ports (tls+tcp://), with credentials made by
deploy/fleet-certs.sh: a worker and hfctl that verify the coordinator run a
job end to end; a wrong CA, a missing client certificate, a plain tcp://
client and a peer sending garbage are all refused with a clear message and
leave the port serving; a coordinator will not listen on the network in
clear text unless tls.mode = off says so, and then it warns.
"""
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_pipeline import assert_exactly_once, submit, wait_job  # noqa: E402

CERTS = os.path.join(harness.SOURCE, 'deploy', 'fleet-certs.sh')


def certs(cmd, *args):
    p = subprocess.run([CERTS, cmd] + list(args), capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError('fleet-certs.sh %s failed: %s%s' % (cmd, p.stdout, p.stderr))
    return p.stdout


def hfctl_raw(url, *args, env_extra=None, timeout=60):
    env = dict(os.environ)
    for k in ('HFLEET_CA_FILE', 'HFLEET_CERT_FILE', 'HFLEET_KEY_FILE', 'HFLEET_TLS_SERVER_NAME'):
        env.pop(k, None)
    env.update(env_extra or {})
    return subprocess.run([harness.HFCTL, '--control', url] + list(args), capture_output=True,
                          text=True, timeout=timeout, env=env)


def coordinator_once(root, *args):
    """Runs hf-coordinator until it exits (a refusal happens before it
    opens the database); returns the completed process."""
    return subprocess.run([harness.COORDINATOR, '--database', 'host=%s/none dbname=none' % root,
                           '--http-listen', ''] + list(args), capture_output=True, text=True, timeout=30)


class TlsFleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = harness.Cluster()
        root = cls.c.root
        cls.good = os.path.join(root, 'certs')
        cls.other = os.path.join(root, 'other')
        certs('ca', cls.good)
        certs('coordinator', cls.good, 'localhost,127.0.0.1')
        certs('worker', cls.good, 'w1')
        certs('worker', cls.good, 'hfctl-user')
        certs('ca', cls.other)
        certs('coordinator', cls.other, '127.0.0.1')
        cls.ca = os.path.join(cls.good, 'ca.crt')
        # hfctl and the workers find the CA and a client certificate in the
        # environment (HFLEET_CA_FILE, ...): the harness's own calls too.
        os.environ['HFLEET_CA_FILE'] = cls.ca
        os.environ['HFLEET_CERT_FILE'] = os.path.join(cls.good, 'worker-hfctl-user.crt')
        os.environ['HFLEET_KEY_FILE'] = os.path.join(cls.good, 'worker-hfctl-user.key')
        cls.c.worker_url = 'tls+tcp://127.0.0.1:%d' % harness.free_port()
        cls.c.control_url = 'tls+tcp://localhost:%d' % harness.free_port()
        cls.c.coordinator_set = [
            'tls.cert_file=' + os.path.join(cls.good, 'coordinator.crt'),
            'tls.key_file=' + os.path.join(cls.good, 'coordinator.key'),
            'tls.ca_file=' + cls.ca,
            'tls.client_auth=required',
            'connections.handshake_timeout=1s',
        ]
        cls.c.start_coordinator()

    @classmethod
    def tearDownClass(cls):
        for k in ('HFLEET_CA_FILE', 'HFLEET_CERT_FILE', 'HFLEET_KEY_FILE'):
            os.environ.pop(k, None)
        if not getattr(cls, 'all_ok', True) or os.environ.get('HF_KEEP'):
            cls.c.dump_logs()
        cls.c.close(keep=bool(os.environ.get('HF_KEEP')))

    def setUp(self):
        self._ok = False

    def tearDown(self):
        if not self._ok:
            type(self).all_ok = False

    def worker(self, wid, ca, cert=True):
        state = os.path.join(self.c.root, 'state-' + wid)
        argv = [harness.WORKER, '--id', wid, '--coordinator-url', self.c.worker_url, '--state-dir', state,
                '--slots', '2', '--runner', 'python3 ' + harness.ARITH_RUNNER, '--log-level', 'info',
                '--set', 'tls.ca_file=' + ca]
        if cert:
            argv += ['--set', 'tls.cert_file=' + os.path.join(self.good, 'worker-w1.crt'),
                     '--set', 'tls.key_file=' + os.path.join(self.good, 'worker-w1.key')]
        env = {k: v for k, v in os.environ.items() if not k.startswith('HFLEET_')}
        # Its worker token: what TLS refuses must be refused for TLS.
        env['HFLEET_WORKER_TOKEN_FILE'] = self.c.token_file(wid, 'worker')
        d = harness.Daemon(wid, argv, self.c.root, env=env).start()
        self.c.workers[wid] = d
        return d

    def test_1_a_job_runs_over_tls(self):
        self.worker('w1', self.ca)
        self.c.wait_for(lambda: len(self.c.hfctl_json('workers')) == 1, 60, 'the worker to register')
        job, n = submit(self.c, '--models', 'bert,gpt2')
        wait_job(self.c, job)
        assert_exactly_once(self, self.c, job, n)
        self._ok = True

    def test_2_a_worker_with_a_wrong_ca_is_refused_and_says_tls(self):
        d = self.worker('w-wrong-ca', os.path.join(self.other, 'ca.crt'))
        self.c.wait_for(lambda: 'certificate' in d.log(), 60, 'the worker to say a certificate was refused')
        self.assertRegex(d.log(), r'could not register with .*TLS: the certificate of .* was not accepted')
        ids = [w['worker_id'] for w in self.c.hfctl_json('workers')]
        self.assertNotIn('w-wrong-ca', ids)
        d.stop()
        self._ok = True

    def test_3_a_worker_without_a_client_certificate_is_refused(self):
        d = self.worker('w-no-cert', self.ca, cert=False)
        self.c.wait_for(lambda: 'TLS handshake with' in d.log(), 60, 'the worker to say the handshake failed')
        ids = [w['worker_id'] for w in self.c.hfctl_json('workers')]
        self.assertNotIn('w-no-cert', ids)
        d.stop()
        self._ok = True

    def test_4_hfctl_with_a_wrong_ca_or_none_fails_clearly(self):
        t0 = time.monotonic()
        p = hfctl_raw(self.c.control_url, '--request-timeout', '3s', 'models', env_extra={
            'HFLEET_CA_FILE': os.path.join(self.other, 'ca.crt'),
            'HFLEET_CERT_FILE': os.environ['HFLEET_CERT_FILE'],
            'HFLEET_KEY_FILE': os.environ['HFLEET_KEY_FILE']})
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('TLS: the certificate of', p.stderr)
        self.assertLess(time.monotonic() - t0, 20)
        # No CA at all: refused before dialling, as bad usage.
        p = hfctl_raw(self.c.control_url, 'models')
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('--ca-file', p.stderr)
        # The right CA but a certificate for another name.
        p = hfctl_raw(self.c.control_url, '--request-timeout', '3s', '--server-name', 'elsewhere.example',
                      'models', env_extra={k: os.environ[k] for k in
                                           ('HFLEET_CA_FILE', 'HFLEET_CERT_FILE', 'HFLEET_KEY_FILE')})
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('elsewhere.example', p.stderr)
        # No client certificate, which this coordinator requires.
        p = hfctl_raw(self.c.control_url, '--request-timeout', '3s', '--ca-file', self.ca, 'models')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('TLS handshake', p.stderr)
        # The right credentials: served.
        self.c.hfctl('models')
        self._ok = True

    def test_5_plain_tcp_and_garbage_are_closed_and_the_port_keeps_serving(self):
        before = self.c.metric('hfleet_connections_closed_total', port='control', reason='tls')
        plain = 'tcp://' + self.c.control_url.split('://', 1)[1]
        p = hfctl_raw(plain, '--request-timeout', '2s', 'models')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('could not reach coordinator', p.stderr)
        # Hostile bytes in place of a TLS ClientHello, on both ports: closed.
        for url in (self.c.control_url, self.c.worker_url):
            port = int(url.rsplit(':', 1)[1])
            for junk in (b'\x00SP\x00\x00\x30\x00\x00', os.urandom(4096),
                         b'\x16\x03\x01\xff\xff' + os.urandom(600)):
                with socket.create_connection(('127.0.0.1', port), timeout=20) as s:
                    try:
                        s.sendall(junk)
                        got = s.recv(65536)
                        while got and not got.startswith(b'\x15'):  # anything but an alert
                            got = s.recv(65536)
                    except (ConnectionResetError, BrokenPipeError):
                        pass
        self.c.wait_for(lambda: self.c.metric('hfleet_connections_closed_total', port='control',
                                       reason='tls') > before, 30, 'the TLS failures to be counted')
        self.c.wait_for(lambda: 'TLS handshake failed' in self.c.coordinator.log(), 30,
                        'the coordinator to log the failed handshakes')
        self.c.hfctl('models')
        self.assertTrue(self.c.coordinator.alive())
        self._ok = True


class TlsPolicyTest(unittest.TestCase):
    def setUp(self):
        self.root = harness.tempfile.mkdtemp(prefix='hfleet-tls-')
        self.addCleanup(harness.shutil.rmtree, self.root, True)

    def port(self):
        return harness.free_port()

    def test_no_clear_text_on_the_network(self):
        loop = 'tcp://127.0.0.1:%d' % self.port()
        for url in ('tcp://0.0.0.0:%d' % self.port(), 'tcp://:%d' % self.port(),
                    'tcp://[::]:%d' % self.port(), 'tcp://192.0.2.1:%d' % self.port()):
            p = coordinator_once(self.root, '--worker-listen', url, '--control-listen', loop)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn('coordinator.worker_listen "%s" can be reached from the network without TLS' % url,
                          p.stderr)
            self.assertIn('tls.mode = off', p.stderr)
        # tls+tcp:// without a certificate.
        p = coordinator_once(self.root, '--worker-listen', 'tls+tcp://127.0.0.1:%d' % self.port(),
                             '--control-listen', loop)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('tls.cert_file and tls.key_file', p.stderr)
        # tls.mode = on: even loopback must be TLS.
        p = coordinator_once(self.root, '--worker-listen', loop, '--control-listen',
                             'ipc://%s/c.ipc' % self.root, '--set', 'tls.mode=on')
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('tls.mode = on', p.stderr)
        p = coordinator_once(self.root, '--set', 'tls.mode=maybe')
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('"tls.mode"', p.stderr)
        # A certificate that is not one.
        junk = os.path.join(self.root, 'junk.pem')
        with open(junk, 'w') as f:
            f.write('-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n')
        p = coordinator_once(self.root, '--worker-listen', 'tls+tcp://127.0.0.1:%d' % self.port(),
                             '--control-listen', loop, '--set', 'tls.cert_file=' + junk,
                             '--set', 'tls.key_file=' + junk)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('not a certificate and its unencrypted private key', p.stderr)

    def test_tls_off_in_so_many_words_runs_and_warns(self):
        with harness.cluster(coordinator_set=('tls.mode=off',)) as c:
            port = harness.free_port()
            c.worker_url = 'tcp://0.0.0.0:%d' % port
            c.start_coordinator()
            self.assertRegex(c.coordinator.log(),
                             r'coordinator.worker_listen "tcp://0.0.0.0:\d+" accepts clear text from the '
                             r'network \(tls.mode = off\)')
            c.worker_url = 'tcp://127.0.0.1:%d' % port
            c.start_worker('w1')
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 60, 'the worker to register')


if __name__ == '__main__':
    unittest.main(verbosity=2)
