# SPDX-License-Identifier: MIT
"""The test harness itself: a cluster its test never closes (a setUpClass
that raised after making it) is stopped and removed when the test process
exits, so no private PostgreSQL outlives the test that made it.
"""
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r'''
import sys
sys.path.insert(0, %r)
import harness
c = harness.Cluster()
print(c.root, c.pg.data, flush=True)
raise RuntimeError("a set-up that fails after making its cluster")
'''


def postmasters_of(data_dir):
    """pids of processes whose command line names data_dir."""
    pids = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if data_dir.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


class ForgottenClusterTest(unittest.TestCase):
    def test_a_cluster_left_open_is_closed_at_exit(self):
        p = subprocess.run([sys.executable, '-c', CHILD % HERE], capture_output=True, text=True, timeout=120)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertIn('a set-up that fails', p.stderr)
        self.assertIn('closing a cluster its test did not close', p.stderr)
        root, data = p.stdout.split()
        self.assertEqual(postmasters_of(data), [], 'its PostgreSQL still runs')
        self.assertFalse(os.path.exists(root), 'its directory is left')


if __name__ == '__main__':
    unittest.main()
