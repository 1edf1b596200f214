#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A worker acts only for what it holds (docs/protocol.md, "Sessions and
ownership"), against a live coordinator, real workers and a real
PostgreSQL:

- a forged result for a task leased to a real worker is refused, whether
  the forger never registered (no session, a guessed one) or registered
  under its own id; the real worker's result decides;
- a second worker under a live id is refused (ERR_ID_IN_USE) and the first
  keeps its work; once the first stopped and its window passed, the id can
  be registered again;
- a health report for another worker's device, or for a device not in the
  sender's registration, is refused and quarantines nothing;
- a late result of an attempt the sender held earlier (its lease expired
  and the task went to another worker) is still stored, as stale; in a
  batch with a result for the other worker's attempt, the batch is refused.

The forger is hf-badpeer's "script" mode (badpeer.c).
"""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

BADPEER = os.environ.get('HF_BADPEER', os.path.join(harness.BUILD, 'tests', 'integration', 'hf-badpeer'))

# The coordinator logs at most one refusal a second: space the attacks
# whose log lines the test reads.
LOG_GAP = 1.1


class OwnershipTest(unittest.TestCase):
    def script(self, c, wid, *steps):
        p = subprocess.run([BADPEER, c.worker_url, 'script', wid] + list(steps), capture_output=True,
                           text=True, timeout=120)
        out = p.stdout + p.stderr
        print('%s %s -> %s' % (wid, ' '.join(steps), out.strip().replace('\n', ' | ')))
        self.assertEqual(p.returncode, 0, out)
        time.sleep(LOG_GAP)
        return out

    def give_tokens(self, c, ids):
        """Worker tokens for the ids hf-badpeer acts as: what it does is
        refused for what the worker does not hold, not for a missing token
        (a stolen or copied token is the case left to these checks)."""
        path = os.path.join(c.root, 'badpeer-tokens')
        with open(path, 'w') as f:
            for name, token in c.seed_tokens(ids).items():
                f.write('%s %s\n' % (name, token))
        os.environ['HF_BADPEER_TOKENS'] = path

    def job_done(self, c, job):
        return c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done'

    def test_a_worker_acts_only_for_what_it_holds(self):
        with harness.cluster(heartbeat='200ms', lease='3s') as c:
            self.give_tokens(c, ['w1', 'intruder', 'slow'])
            c.start_coordinator()
            c.start_worker('w1', slots=2, runner_args='--sleep 3')
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 30, 'w1 to register')
            job = int(c.hfctl_json('submit', '--models', 'bert,gpt2,t5', '--backends', 'cpu')['job_id'])
            leased = []

            def w1_runs_a_task():
                leased[:] = c.pg.rows("SELECT id, attempt FROM tasks WHERE job_id = %d AND state = 'leased'"
                                      " AND worker_id = 'w1' ORDER BY id LIMIT 1" % job)
                return leased
            c.wait_for(w1_runs_a_task, 30, 'w1 to run a task')
            task, attempt = int(leased[0][0]), int(leased[0][1])
            spec = 'result:%d:%d' % (task, attempt)

            # Forged outcomes from a peer that never registered: under the
            # real worker's id without its session, or with a guessed one.
            out = self.script(c, 'w1', spec, 'session:12345', spec)
            self.assertEqual(out.count('error 7: worker "w1" is not registered with this coordinator'
                                       ' under this session'), 2, out)

            # ... and from a peer registered under its own id.
            out = self.script(c, 'intruder', 'register', spec,
                              'result:%d:%d' % (task, attempt + 5))
            self.assertIn('register: registered', out)
            self.assertIn('%s: error 10: results refused: task %d attempt %d is not leased to worker '
                          '"intruder"; none stored' % (spec, task, attempt), out)
            self.assertIn('error 10: results refused: task %d attempt %d is not leased to worker '
                          '"intruder"; none stored' % (task, attempt + 5), out)
            self.assertIn('refused results from worker "intruder": task %d attempt %d was not leased to it'
                          % (task, attempt), c.coordinator.log())

            # A stolen id: refused while w1 is live; w1 keeps its registration.
            out = self.script(c, 'w1', 'register')
            self.assertIn('register: error 11: worker id "w1" is in use: another live worker holds it', out)
            self.assertIn('refused a registration as worker "w1" (host "badpeer"): another live worker '
                          'holds that id', c.coordinator.log())
            workers = {w['worker_id']: w for w in c.hfctl_json('workers')}
            self.assertEqual(sorted(workers), ['intruder', 'w1'])
            self.assertNotEqual(workers['w1']['hostname'], 'badpeer')

            # Forged health reports: for w1's device without its session, and
            # for a device not in the sender's own registration.
            out = self.script(c, 'w1', 'health:0')
            self.assertIn('health:0: error 7: worker "w1" is not registered', out)
            out = self.script(c, 'intruder', 'register', 'health:1')
            self.assertIn('health:1: error 10: health report refused, nothing applied: results[0]: device '
                          'cpu:1 is not in the registration of worker "intruder"', out)
            self.assertIn('refused a health report from worker "intruder": device cpu:1 is not in its '
                          'registration', c.coordinator.log())

            # The real worker's results decided, every one of them.
            c.wait_for(lambda: self.job_done(c, job), 120, 'job %d to finish' % job)
            self.assertEqual(c.pg.rows("SELECT DISTINCT status, worker_id FROM task_outcomes WHERE job_id = %d"
                                       % job), [['passed', 'w1']])
            self.assertEqual(c.pg.psql("SELECT count(*) FROM results WHERE worker_id <> 'w1'"
                                       " OR reason LIKE 'forged%'"), '0')
            self.assertEqual(c.pg.rows("""
                SELECT t.id FROM tasks t LEFT JOIN results r ON r.task_id = t.id AND NOT r.stale AND NOT r.retried
                WHERE t.job_id = %d GROUP BY t.id HAVING count(r.id) <> 1""" % job), [])
            # No device was quarantined, no forged check stored.
            self.assertEqual(c.pg.psql("SELECT count(*) FROM device_health_checks WHERE detail LIKE 'forged%'"),
                             '0')
            self.assertEqual(c.pg.psql('SELECT count(*) FROM device_quarantine'), '0')
            states = {(d['worker_id'], d['state']) for d in c.hfctl_json('devices')['devices']}
            self.assertIn(('w1', 'in-service'), states)
            # The honest worker never saw a refusal.
            self.assertNotIn('refused', c.workers['w1'].log())
            self.assertNotIn('in use', c.workers['w1'].log())

            # Once w1 stopped and its window (3 heartbeats + 2 s) passed, the
            # id is free again: a restarted worker registers at once.
            self.assertEqual(c.workers['w1'].stop(), 0)
            time.sleep(3.0)
            out = self.script(c, 'w1', 'register')
            self.assertIn('register: registered', out)

            # A late result of the sender's own earlier attempt is stale, not
            # forged: "slow" takes a task and stops polling, its lease
            # expires, w2 runs the task as the next attempt.
            job2 = int(c.hfctl_json('submit', '--models', 'bert', '--backends', 'cpu')['job_id'])
            slow = subprocess.Popen([BADPEER, c.worker_url, 'script', 'slow', 'register', 'poll', 'sleep:7000',
                                     'result:L,L+1', 'result:L'], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            try:
                c.wait_for(lambda: c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND worker_id = 'slow'"
                                             % job2) == '1', 30, 'slow to lease a task')
                c.start_worker('w2', slots=1, runner_args='--sleep 8')
                out, _ = slow.communicate(timeout=60)
            finally:
                slow.kill()
            print('slow -> %s' % out.strip().replace('\n', ' | '))
            self.assertEqual(slow.returncode, 0, out)
            t2, a2 = (int(x) for x in out.split('poll: leased ')[1].split()[:2])
            # The batch naming w2's attempt is refused, all of it; the own
            # late result alone is stored and acknowledged.
            self.assertIn('result:L,L+1: error 10: results refused: task %d attempt %d is not leased to '
                          'worker "slow"' % (t2, a2 + 1), out)
            self.assertIn('result:L: acked 1', out)
            c.wait_for(lambda: self.job_done(c, job2), 120, 'job %d to finish' % job2)
            self.assertEqual(c.pg.rows('SELECT attempt, worker_id, stale, status FROM results WHERE task_id = %d'
                                       ' ORDER BY attempt' % t2),
                             [[str(a2), 'slow', 't', 'failed'], [str(a2 + 1), 'w2', 'f', 'passed']])
            self.assertEqual(c.pg.rows('SELECT status, worker_id FROM task_outcomes WHERE task_id = %d' % t2),
                             [['passed', 'w2']])
            # Once the task is final the scheduler forgets it: the statement
            # that stores results refuses w2's attempt on its own (the
            # attempts table), while slow's own result is a duplicate.
            out = self.script(c, 'slow', 'register', 'result:%d:%d,%d:%d' % (t2, a2, t2, a2 + 1),
                              'result:%d:%d' % (t2, a2))
            self.assertIn('error 10: results refused: task %d attempt %d is not leased to worker "slow"; '
                          'the others are stored' % (t2, a2 + 1), out)
            self.assertIn('result:%d:%d: acked 1' % (t2, a2), out)
            self.assertEqual(c.pg.psql('SELECT count(*) FROM results WHERE task_id = %d' % t2), '2')
            self.assertTrue(c.coordinator.alive())
            for d in [c.coordinator] + list(c.workers.values()):
                self.assertNotIn('runtime error', d.log())
                self.assertNotIn('Sanitizer', d.log())


    def test_a_restarted_worker_comes_back_under_its_session(self):
        # The same worker restarted on its state directory (an upgrade, a
        # systemctl restart) registers at once under the session it kept
        # (spool/.session), while its old registration is still live; a
        # worker under that id from another state directory is still
        # refused.
        with harness.cluster(heartbeat='200ms', lease='3s') as c:
            c.start_coordinator()
            w = c.start_worker('w1')
            c.wait_for(lambda: 'registered with' in w.log(), 30, 'w1 to register')
            session = open(os.path.join(c.root, 'state-w1', 'spool', '.session')).read()
            self.assertRegex(session, r'^[0-9]+\n$')
            self.assertEqual(w.stop(), 0)
            before = len(w.log())
            w = c.start_worker('w1')  # at once: the old session is still live
            c.wait_for(lambda: w.log().count('registered with') >= 2, 10, 'w1 to register again')
            again = w.log()[before:]
            self.assertNotIn('in use', again)
            self.assertEqual(open(os.path.join(c.root, 'state-w1', 'spool', '.session')).read(), session)
            # Another process under w1's id, with its own state directory.
            other = harness.Daemon('w1-other', [
                harness.WORKER, '--id', 'w1', '--coordinator-url', c.worker_url, '--state-dir',
                os.path.join(c.root, 'state-w1-other'), '--slots', '1', '--runner',
                'python3 %s' % harness.ARITH_RUNNER, '--log-level', 'info'],
                c.root, env=c.worker_env('w1')).start()
            c.wait_for(lambda: 'is in use' in other.log(), 10, 'the other w1 to be refused')
            other.stop()


if __name__ == '__main__':
    unittest.main(verbosity=2)
