#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hfctl and hf-worker without surprises (issue 13), against a real
coordinator: each program at the other's port is told so and stops (hfctl)
or backs off (hf-worker); nothing listening fails at once; the old
spellings (--coordinator, $HFLEET_COORDINATOR, hfctl's --timeout, submit's
--timeout) warn and work; mistyped commands, options and names get a "did
you mean" and exit 2.  Times are checked with generous bounds, as
behaviour ("not a 10 s timeout"), not as benchmarks.
"""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = harness.Cluster()
        cls.c.start_coordinator()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def raw(self, *args, env_extra=None, drop=('HFLEET_CONTROL_URL', 'HFLEET_COORDINATOR')):
        """hfctl with the admin token and no address but what args and
        env_extra give."""
        env = {k: v for k, v in os.environ.items() if k not in drop + ('HFLEET_TOKEN', 'HFLEET_TOKEN_FILE')}
        env['HOME'] = self.c.root
        env.update(env_extra or {})
        return self.c.hfctl(*args, check=False, env=env, timeout=60, control=False)

    def timed(self, *args, **kw):
        t = time.monotonic()
        p = self.raw(*args, **kw)
        return p, time.monotonic() - t

    # ---- the wrong port ----

    def test_hfctl_at_the_worker_port_is_told_so_at_once(self):
        p, took = self.timed('--control', self.c.worker_url, '--request-timeout', '20s', 'jobs')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("this is the coordinator's worker port", p.stderr)
        self.assertIn('coordinator.control_listen', p.stderr)
        self.assertLess(took, 5, 'hfctl took %.1f s: a timeout, not an answer' % took)

    def test_worker_at_the_control_port_logs_it_and_backs_off(self):
        state = os.path.join(self.c.root, 'state-wrong')
        d = harness.Daemon('wrong-port', [harness.WORKER, '--id', 'wrong', '--coordinator-url',
                                          self.c.control_url, '--state-dir', state,
                                          '--runner', 'python3 ' + harness.ARITH_RUNNER,
                                          '--log-level', 'debug'],
                           self.c.root, env=self.c.worker_env('wrong')).start()
        try:
            self.c.wait_for(lambda: "coordinator's control port" in d.log(), 30,
                            'the worker never said it is at the control port')
            log = d.log()
            self.assertIn('coordinator.worker_listen', log)
            self.assertIn('--coordinator-url', log)
            # Backs off: over 3 s, a handful of attempts (200 ms doubling to
            # 5 s), not a tight loop.
            n0 = log.count("coordinator's control port")
            time.sleep(3)
            tries = d.log().count("coordinator's control port") - n0
            self.assertLess(tries, 10, 'the worker retried %d times in 3 s' % tries)
            self.assertTrue(d.alive(), 'the worker gave up: %s' % d.log()[-2000:])
        finally:
            d.stop()

    # ---- nothing listening ----

    def test_refused_connection_fails_at_once_naming_where_the_address_came_from(self):
        dead = 'tcp://127.0.0.1:%d' % harness.free_port()
        for args, env, source in ((['--control', dead], None, '--control'),
                                  ([], {'HFLEET_CONTROL_URL': dead}, '$HFLEET_CONTROL_URL')):
            p, took = self.timed(*(args + ['--request-timeout', '20s', 'jobs']), env_extra=env)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn('connection refused', p.stderr)
            self.assertIn(dead, p.stderr)
            self.assertIn('the address is from %s' % source, p.stderr)
            self.assertIn('.state/env', p.stderr)
            self.assertLess(took, 3, 'a refused connection took %.1f s' % took)
        # The default address, named as such (nothing listens at 7101 here
        # is not certain: only check the words when it is refused).
        p = self.raw('--request-timeout', '2s', 'jobs')
        if 'connection refused' in p.stderr:
            self.assertIn('the default', p.stderr)

    def test_submit_does_not_retry_a_refused_connection(self):
        dead = 'tcp://127.0.0.1:%d' % harness.free_port()
        p, took = self.timed('--control', dead, 'submit', '--models', 'bert')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertNotIn('asking again', p.stderr)
        self.assertLess(took, 3)

    # ---- the old spellings ----

    def test_old_spellings_warn_and_work(self):
        p = self.raw('--coordinator', self.c.control_url, '--timeout', '20s', 'jobs')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('--coordinator is deprecated: use --control', p.stderr)
        self.assertIn('--timeout is deprecated: use --request-timeout', p.stderr)
        p = self.raw('jobs', env_extra={'HFLEET_COORDINATOR': self.c.control_url})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('HFLEET_COORDINATOR is deprecated for hfctl: set HFLEET_CONTROL_URL', p.stderr)
        self.assertIn('using HFLEET_COORDINATOR=%s' % self.c.control_url, p.stderr)
        # The new one wins, without a word about the old.
        p = self.raw('jobs', env_extra={'HFLEET_COORDINATOR': 'tcp://127.0.0.1:1',
                                        'HFLEET_CONTROL_URL': self.c.control_url})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn('deprecated', p.stderr)
        # submit's --timeout is --task-timeout.
        p = self.raw('--control', self.c.control_url, '--json', 'submit', '--models', 'bert',
                     '--timeout', '30s', '--allow-waiting')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('--timeout is deprecated: use --task-timeout', p.stderr)
        self.raw('--control', self.c.control_url, 'cancel', re.search(r'"job_id":\s*(\d+)', p.stdout).group(1))

    def test_old_worker_spellings_warn_and_work(self):
        for wid, args, env in (('old-opt', ['--coordinator', self.c.worker_url], {}),
                               ('old-env', [], {'HFLEET_COORDINATOR': self.c.worker_url})):
            env_all = self.c.worker_env(wid)
            env_all.pop('HFLEET_WORKER_URL', None)
            env_all.update(env)
            d = harness.Daemon(wid, [harness.WORKER, '--id', wid] + args + [
                '--state-dir', os.path.join(self.c.root, 'state-' + wid),
                '--runner', 'python3 ' + harness.ARITH_RUNNER, '--log-level', 'info'],
                self.c.root, env=env_all).start()
            try:
                self.c.wait_for(lambda: 'registered with' in d.log(), 30, '%s never registered' % wid)
                self.assertIn('deprecated', d.log())
                self.assertIn('--coordinator-url' if args else 'HFLEET_WORKER_URL', d.log())
            finally:
                d.stop()

    # ---- did you mean ----

    def test_typos_get_suggestions_and_exit_2(self):
        url = ['--control', self.c.control_url]
        for args, want in ((['submt'], 'unknown command "submt" (did you mean "submit"?'),
                           (['submit', '--models', 'bret'], 'unknown model "bret" (did you mean "bert"?'),
                           (['submit', '--all', '--backends', 'cdua'],
                            'unknown backend "cdua" (did you mean "cuda"?'),
                           (['submit', '--all', '--kinnd', 'test'],
                            'unknown option "--kinnd" (did you mean "--kind"?'),
                           (['jobs', '--limt', '3'], 'unknown option "--limt" (did you mean "--limit"?'),
                           (['--contrl', self.c.control_url, 'jobs'],
                            'unknown option "--contrl" (did you mean "--control"?')):
            p = self.raw(*(url + args))
            self.assertEqual(p.returncode, 2, '%s: %s' % (args, p.stderr))
            self.assertIn(want, p.stderr, args)


if __name__ == '__main__':
    unittest.main(verbosity=2)
