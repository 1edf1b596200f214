#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prometheus metrics of the coordinator and of a worker, after a real job:
both endpoints' text passes `promtool check metrics`, the counters and
histograms agree with the job (tasks finished = the job's tasks, results
sent = results stored), integers are exact (a device's memory in bytes reads
back digit for digit), and the endpoints stay within their bounds (GET only,
no body read, a header past nng's buffer refused, one request per
connection).  deploy/prometheus/ passes `promtool check config` and
`promtool check rules`, and `promtool test rules` fires the alerts.

promtool comes from Debian's `prometheus` package (deploy/install-deps.sh --test
installs it); without it the test fails saying so.
"""
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_pipeline import assert_exactly_once, submit, wait_job  # noqa: E402

PROMTOOL = shutil.which('promtool')
DEPLOY = os.path.join(harness.SOURCE, 'deploy', 'prometheus')
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(url):
    with urllib.request.urlopen(url + '/metrics', timeout=30) as r:
        assert r.status == 200, r.status
        assert r.headers['Content-Type'].startswith('text/plain; version=0.0.4'), r.headers['Content-Type']
        return r.read().decode()


def parse(text):
    """-> {(name, frozenset(labels.items())): value text}; every line must be
    a comment or a sample."""
    out = {}
    for line in text.splitlines():
        if line.startswith('#') or not line:
            continue
        m = SAMPLE.match(line)
        assert m, 'not a sample line: %r' % line
        labels = frozenset(LABEL.findall(m.group(3) or ''))
        out[(m.group(1), labels)] = m.group(4)
    return out


def value(samples, name, **labels):
    want = frozenset(labels.items())
    got = [v for (n, l), v in samples.items() if n == name and want <= l]
    assert got, 'no %s%s in the metrics' % (name, labels)
    return got


def total(samples, name, **labels):
    return sum(int(v) for v in value(samples, name, **labels))


def promtool(*args, stdin=None):
    p = subprocess.run([PROMTOOL] + list(args), input=stdin, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not PROMTOOL:
            raise AssertionError('promtool not found: deploy/install-deps.sh --test installs it (Debian package '
                                 '"prometheus")')
        cls.ctx = harness.cluster()
        cls.c = cls.ctx.__enter__()
        try:
            cls.c.start_coordinator()
            cls.worker_http = 'http://127.0.0.1:%d' % harness.free_port()
            wid = 'w-metrics'
            runner = 'python3 %s' % harness.ARITH_RUNNER
            cls.c.workers[wid] = harness.Daemon(wid, [
                harness.WORKER, '--id', wid, '--coordinator-url', cls.c.worker_url,
                '--state-dir', os.path.join(cls.c.root, 'state-' + wid), '--slots', '2',
                '--runner', runner, '--log-level', 'info',
                '--set', 'runner.warm=true', '--set', 'worker.metrics_listen=' + cls.worker_http],
                cls.c.root, env=cls.c.worker_env(wid)).start()
            cls.c.wait_for(lambda: len(cls.c.hfctl_json('workers')) == 1, 60, 'the worker to register')
            cls.job, cls.n = submit(cls.c, '--models', 'bert,gpt2,t5,vit', '--batch-sizes', '1,2')
            wait_job(cls.c, cls.job)
            # The worker's acknowledgements land after the job is done.
            cls.c.wait_for(lambda: total(parse(scrape(cls.worker_http)), 'hfleet_worker_results_sent_total') == cls.n,
                           30, 'the worker to see its results acknowledged')
        except BaseException:
            cls.ctx.__exit__(*sys.exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)

    def test_both_endpoints_pass_promtool(self):
        for url in (self.c.http_url, self.worker_http):
            text = scrape(url)
            rc, out = promtool('check', 'metrics', stdin=text)
            self.assertEqual(rc, 0, 'promtool check metrics on %s:\n%s' % (url, out))
            self.assertEqual(total(parse(text), 'hfleet_build_info'), 1)
            for name in ('process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds',
                         'process_max_fds', 'process_start_time_seconds', 'process_virtual_memory_bytes'):
                self.assertGreater(float(value(parse(text), name)[0]), 0, name)

    def test_coordinator_counts_the_job(self):
        assert_exactly_once(self, self.c, self.job, self.n)
        s = parse(scrape(self.c.http_url))
        stored = dict(self.c.pg.rows("SELECT state, count(*) FROM tasks WHERE job_id = %d GROUP BY state" % self.job))
        self.assertEqual(total(s, 'hfleet_tasks_finished_total'), self.n)
        for outcome in ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled'):
            self.assertEqual(total(s, 'hfleet_tasks_finished_total', outcome=outcome),
                             int(stored.get(outcome, 0)), outcome)
        self.assertEqual(total(s, 'hfleet_submits_total'), 1)
        self.assertGreaterEqual(total(s, 'hfleet_results_received_total'), self.n)
        self.assertEqual(total(s, 'hfleet_leases_expired_total'), 0)
        self.assertEqual(total(s, 'hfleet_retries_total'), 0)
        self.assertEqual(total(s, 'hfleet_quarantines_total'), 0)
        self.assertEqual(total(s, 'hfleet_tasks', state='queued'), 0)
        self.assertEqual(total(s, 'hfleet_tasks', state='running'), 0)
        self.assertEqual(total(s, 'hfleet_workers', state='connected'), 1)
        self.assertEqual(total(s, 'hfleet_database_up'), 1)
        # Histograms: one duration per finished task, one queue wait per
        # lease, grants and database operations observed.
        self.assertEqual(total(s, 'hfleet_task_duration_seconds_count'), self.n)
        self.assertEqual(total(s, 'hfleet_queue_wait_seconds_count'), self.n)
        self.assertGreaterEqual(total(s, 'hfleet_lease_grant_seconds_count'), 1)
        self.assertGreaterEqual(total(s, 'hfleet_db_operation_seconds_count', op='result_store'), 1)
        self.assertGreaterEqual(total(s, 'hfleet_db_operation_seconds_count', op='job_create'), 1)
        self.assert_histograms(s)
        # No internal state names.
        states = {dict(l)['state'] for (n, l) in s if n == 'hfleet_tasks'}
        self.assertEqual(states, {'queued', 'running', 'cancelling'})

    def assert_histograms(self, s):
        """Buckets cumulative, ending in +Inf = _count."""
        series = {}
        for (name, labels), v in s.items():
            if name.endswith('_bucket'):
                le = dict(labels)['le']
                rest = frozenset(kv for kv in labels if kv[0] != 'le')
                series.setdefault((name[:-len('_bucket')], rest), []).append(
                    (float('inf') if le == '+Inf' else float(le), int(v)))
        self.assertTrue(series)
        for (base, rest), buckets in series.items():
            buckets.sort()
            counts = [n for _, n in buckets]
            self.assertEqual(counts, sorted(counts), base)
            self.assertEqual(buckets[-1][0], float('inf'))
            self.assertEqual(buckets[-1][1], int(s[(base + '_count', rest)]), base)

    def test_integers_are_exact(self):
        s = parse(scrape(self.c.http_url))
        devices = self.c.hfctl_json('workers')[0]['devices']
        for d in devices:
            text = value(s, 'hfleet_device_memory_total_bytes', backend=d['backend'], index=str(d['index']))[0]
            self.assertRegex(text, r'^[0-9]+$')
            self.assertEqual(int(text), d['memory_bytes'])
        # The host's memory has more digits than %.6g kept.
        self.assertGreater(max(d['memory_bytes'] for d in devices), 10**7)

    def test_worker_counts_the_job(self):
        s = parse(scrape(self.worker_http))
        self.assertEqual(total(s, 'hfleet_worker_tasks_finished_total', backend='cpu'), self.n)
        self.assertEqual(total(s, 'hfleet_worker_results_sent_total'), self.n)
        self.assertEqual(total(s, 'hfleet_worker_results_refused_total'), 0)
        self.assertEqual(total(s, 'hfleet_worker_results_waiting'), 0)
        self.assertEqual(total(s, 'hfleet_worker_tasks_running'), 0)
        self.assertEqual(total(s, 'hfleet_worker_tasks_queued'), 0)   # worker.lease_ahead is off
        # Warm runners: at least one started, far fewer than one per task.
        self.assertGreaterEqual(total(s, 'hfleet_worker_runner_starts_total'), 1)
        self.assertLess(total(s, 'hfleet_worker_runner_starts_total'), self.n)

    def test_healthz(self):
        for url in (self.c.http_url, self.worker_http):
            with urllib.request.urlopen(url + '/healthz', timeout=10) as r:
                self.assertEqual((r.status, r.read()), (200, b'ok\n'))

    def test_endpoints_are_bounded(self):
        host, port = self.c.http_url[len('http://'):].rsplit(':', 1)
        # Only GET (HEAD): a POST is refused, its body never read.
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request('POST', '/metrics', body=b'x' * 100000)
        r = conn.getresponse()
        self.assertEqual(r.status, 405)
        conn.close()
        # One request per connection.
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request('GET', '/metrics')
        r = conn.getresponse()
        self.assertEqual(r.getheader('Connection'), 'close')
        r.read()
        conn.close()
        # A header line past nng's 8 KiB read buffer: no answer but a close.
        with socket.create_connection((host, int(port)), timeout=10) as sk:
            sk.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ' + b'a' * 20000 + b'\r\n\r\n')
            got = b''
            try:
                while True:
                    chunk = sk.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            self.assertFalse(got.startswith(b'HTTP/1.1 200'), got[:200])
        # Still serving.
        self.assertIn('hfleet_build_info', scrape(self.c.http_url))

    def test_deploy_prometheus_config_and_rules(self):
        rc, out = promtool('check', 'config', os.path.join(DEPLOY, 'prometheus.yml'))
        self.assertEqual(rc, 0, out)
        rc, out = promtool('check', 'rules', os.path.join(DEPLOY, 'alerts.yml'))
        self.assertEqual(rc, 0, out)
        rc, out = promtool('test', 'rules', os.path.join(DEPLOY, 'alerts_test.yml'))
        self.assertEqual(rc, 0, out)


if __name__ == '__main__':
    unittest.main(verbosity=2)
