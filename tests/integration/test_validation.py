#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile worker against a live coordinator: messages that break the
protocol's limits (docs/protocol.md, "Limits") are answered with
ERR_BAD_REQUEST naming the field and the limit, the peer is logged, and
nothing else changes: the coordinator keeps running and a real worker's job
still completes with one deciding result per task.

The attacks come from hf-badpeer (badpeer.c), a C peer speaking nng's real
framing and our protobuf.
"""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

BADPEER = os.environ.get('HF_BADPEER', os.path.join(harness.BUILD, 'tests', 'integration', 'hf-badpeer'))

# attack -> what the error must say
ATTACKS = {
    'nonfinal-result': 'results[0].status: 0 is not a final status',
    'status-99': 'results[0].status: 99 is not a known TaskStatus value',
    'nan-result': 'results[0].started_at: NaN is not a finite number',
    'dup-devices': 'devices[1]: device cpu:0 is already listed as devices[0]',
    'nul-string': 'cached_models[0]: not valid UTF-8 text (or it holds a NUL)',
    'bad-utf8-id': 'worker_id: not valid UTF-8',
    'huge-poll': 'poll: a poll message of',
}


class ValidationTest(unittest.TestCase):
    def test_hostile_messages_are_refused_and_change_nothing(self):
        # A small coordinator.max_workers, so that a flood reaches it.
        with harness.cluster(coordinator_set=('coordinator.max_workers=128',
                                              'coordinator.workers_memory=16')) as c:
            # Every id the flood registers under has its own worker token.
            ids = ['flood-%d' % i for i in range(140)] + ['late-%d' % i for i in range(3)] + \
                ['big-%d' % i for i in range(40)]
            tokens_path = os.path.join(c.root, 'badpeer-tokens')
            with open(tokens_path, 'w') as f:
                for name, token in c.seed_tokens(ids).items():
                    f.write('%s %s\n' % (name, token))
            os.environ['HF_BADPEER_TOKENS'] = tokens_path
            c.start_coordinator()
            c.start_worker('w1', slots=2)
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 30, 'the worker to register')
            tasks_before = c.pg.psql('SELECT count(*) FROM results')

            for attack, text in ATTACKS.items():
                p = subprocess.run([BADPEER, c.worker_url, attack], capture_output=True, text=True, timeout=60)
                print('%s -> %s' % (attack, (p.stdout + p.stderr).strip()))
                self.assertEqual(p.returncode, 0, '%s: %s%s' % (attack, p.stdout, p.stderr))
                self.assertIn('error 1: ', p.stdout)
                self.assertIn(text, p.stdout)
                self.assertTrue(c.coordinator.alive(), 'the coordinator died of ' + attack)

            # Nothing of them was kept or stored.
            workers = c.hfctl_json('workers')
            self.assertEqual([w['worker_id'] for w in workers], ['w1'])
            self.assertEqual(c.pg.psql('SELECT count(*) FROM results'), tasks_before)
            self.assertEqual(c.pg.psql("SELECT count(*) FROM workers WHERE id <> 'w1'"), '0')
            self.assertNotIn('badpeer', c.hfctl('workers').stdout)
            # The peer was logged, with its address.
            self.assertIn('refused a message from 127.0.0.1:', c.coordinator.log())

            # A registration flood is bounded: max_workers are kept, the rest
            # refused while all are connected; the real worker stays.
            p = subprocess.run([BADPEER, c.worker_url, 'register-flood', 'flood', '140'], capture_output=True,
                               text=True, timeout=120)
            print('register-flood -> %s' % (p.stdout + p.stderr).strip())
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn('accepted 127 refused 13', p.stdout)
            self.assertIn('this coordinator is full', p.stdout)
            ids = [w['worker_id'] for w in c.hfctl_json('workers')]
            self.assertEqual(len(ids), 128)
            self.assertIn('w1', ids)
            # Once they stop polling they make room for new workers, never
            # for a connected one.
            time.sleep(3.5)
            p = subprocess.run([BADPEER, c.worker_url, 'register-flood', 'late', '3'], capture_output=True,
                               text=True, timeout=60)
            self.assertIn('accepted 3 refused 0', p.stdout)
            ids = [w['worker_id'] for w in c.hfctl_json('workers')]
            self.assertEqual(len(ids), 128)
            self.assertIn('w1', ids)
            self.assertIn('late-2', ids)

            # Registrations are bounded in bytes too, whatever their number:
            # 40 of about 800 KB each (4,000 cached models) against
            # coordinator.workers_memory = 16 MiB keep at most 20 at any time.
            p = subprocess.run([BADPEER, c.worker_url, 'register-flood', 'big', '40', '4000'],
                               capture_output=True, text=True, timeout=120)
            print('big register-flood -> %s' % (p.stdout + p.stderr).strip())
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            ids = [w['worker_id'] for w in c.hfctl_json('workers')]
            self.assertIn('w1', ids)
            self.assertLessEqual(len([i for i in ids if i.startswith('big-')]), 20)

            # The real worker's job still completes, each task decided once.
            out = c.hfctl_json('submit', '--models', 'bert,gpt2,t5', '--backends', 'cpu')
            job, n = int(out['job_id']), int(out['task_count'])
            c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 120,
                       'job %d to finish' % job)
            bad = c.pg.rows("""
                SELECT t.id FROM tasks t LEFT JOIN results r ON r.task_id = t.id AND NOT r.stale AND NOT r.retried
                WHERE t.job_id = %d GROUP BY t.id HAVING count(r.id) <> 1""" % job)
            self.assertEqual(bad, [])
            self.assertEqual(int(c.pg.psql('SELECT count(*) FROM tasks WHERE job_id = %d' % job)), n)
            self.assertTrue(c.coordinator.alive())
            # In the sanitizer build, nothing was reported along the way.
            for d in (c.coordinator, c.workers['w1']):
                self.assertNotIn('runtime error', d.log())
                self.assertNotIn('Sanitizer', d.log())


if __name__ == '__main__':
    unittest.main(verbosity=2)
