# SPDX-License-Identifier: MIT
"""The quickstart's private PostgreSQL cluster (deploy/private-pg.sh) from
checkouts the postgres user cannot enter: a 0700 `mktemp -d` directory, on a
path with spaces, as root (as CI runs) and as an ordinary user.

Checks that the cluster starts and serves the hfleet database, that the
user's directories keep their permissions, that each checkout has a cluster
of its own, that `stop` and a second `start` find the same cluster (its data
kept), and that `destroy` removes it wherever it lives.
"""
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get('HF_SOURCE_ROOT', os.path.join(os.path.dirname(__file__), '..', '..'))
SCRIPT = os.path.join(os.path.abspath(SOURCE), 'deploy', 'private-pg.sh')


def run(args, user=None, check=True, script=SCRIPT):
    prefix = ['runuser', '-u', user, '--'] if user else []
    p = subprocess.run(prefix + [script] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError('%s %s failed (%d):\n%s%s' % (SCRIPT, ' '.join(args), p.returncode,
                                                          p.stdout, p.stderr))
    return p


def psql(conninfo, sql, user=None):
    prefix = ['runuser', '-u', user, '--'] if user else []
    return subprocess.run(prefix + ['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', conninfo,
                                    '-c', sql], check=True, stdout=subprocess.PIPE, text=True,
                          timeout=60).stdout.strip()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class PrivateCluster(unittest.TestCase):
    def setUp(self):
        # mktemp -d makes a 0700 directory, like a home directory on Debian.
        self.top = tempfile.mkdtemp(prefix='hfleet pg ')
        self.addCleanup(shutil.rmtree, self.top, ignore_errors=True)
        self.assertEqual(mode(self.top), 0o700)

    def checkout(self, name, owner=None):
        d = os.path.join(self.top, name)
        os.mkdir(d, 0o700)
        state = os.path.join(d, '.state')
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.addCleanup(run, ['destroy', state], owner, False)
        return d, state

    @unittest.skipUnless(os.geteuid() == 0, 'the postgres user cannot reach a root checkout only as root')
    def test_root_checkout_in_a_private_directory(self):
        d1, s1 = self.checkout('first checkout')
        d2, s2 = self.checkout('second checkout')

        c1 = run(['start', s1]).stdout.strip()
        where1 = run(['where', s1]).stdout.strip()
        # The postgres user cannot enter the 0700 directory: the cluster is
        # elsewhere, private to its owner, and the permissions are intact.
        self.assertFalse(where1.startswith(self.top), where1)
        self.assertEqual(mode(self.top), 0o700)
        self.assertEqual(mode(d1), 0o700)
        self.assertEqual(mode(where1), 0o700)
        self.assertEqual(pwd.getpwuid(os.stat(where1).st_uid).pw_name, 'postgres')
        self.assertEqual(psql(c1, 'SELECT current_database()'), 'hfleet')
        psql(c1, 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)')

        # Another checkout gets its own cluster, running at the same time.
        c2 = run(['start', s2]).stdout.strip()
        where2 = run(['where', s2]).stdout.strip()
        self.assertNotEqual(where1, where2)
        self.assertNotEqual(c1, c2)
        self.assertEqual(psql(c2, "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'"), '0')

        # stop, then start again: the same cluster and its data.
        run(['stop', s1])
        self.assertNotEqual(subprocess.run(['psql', '-X', c1, '-c', 'SELECT 1'], capture_output=True,
                                           timeout=60).returncode, 0)
        c1b = run(['start', s1]).stdout.strip()
        self.assertEqual(run(['where', s1]).stdout.strip(), where1)
        self.assertEqual(psql(c1b, 'SELECT x FROM kept'), '7')

        run(['destroy', s1])
        self.assertFalse(os.path.exists(where1))
        self.assertFalse(os.path.exists(os.path.join(s1, 'pg.location')))
        self.assertEqual(psql(c2, 'SELECT 1'), '1')

    @unittest.skipUnless(os.geteuid() == 0, 'needs root to act as another user')
    def test_ordinary_user_keeps_the_cluster_in_the_checkout(self):
        # An ordinary user runs initdb as itself: the cluster stays in .state.
        user = 'nobody'
        top = tempfile.mkdtemp(prefix='hfleet pg user ')
        self.addCleanup(shutil.rmtree, top, ignore_errors=True)
        pw = pwd.getpwnam(user)
        os.chown(top, pw.pw_uid, pw.pw_gid)
        d = os.path.join(top, 'my checkout')
        os.mkdir(d, 0o700)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        state = os.path.join(d, '.state')
        # The user's own checkout holds the script (this one may be under
        # /root, where that user cannot go).
        os.mkdir(os.path.join(d, 'deploy'))
        script = os.path.join(d, 'deploy', 'private-pg.sh')
        shutil.copy(SCRIPT, script)
        # private-pg.sh sources ports.sh, which runs hfleet_ports.py.
        helpers = [os.path.join(d, 'deploy', f) for f in ('ports.sh', 'hfleet_ports.py')]
        for h in helpers:
            shutil.copy(os.path.join(os.path.dirname(SCRIPT), os.path.basename(h)), h)
        for path in [os.path.join(d, 'deploy'), script] + helpers:
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.addCleanup(run, ['destroy', state], user, False, script)
        c = run(['start', state], user, script=script).stdout.strip()
        self.assertEqual(run(['where', state], user, script=script).stdout.strip(),
                         os.path.join(d, '.state', 'pg'))
        self.assertEqual(psql(c, 'SELECT current_user', user), 'postgres')
        self.assertEqual(mode(top), 0o700)
        run(['destroy', state], user, script=script)
        self.assertFalse(os.path.exists(os.path.join(state, 'pg')))

    def test_unknown_command_is_refused(self):
        _, s = self.checkout('x')
        p = run(['frobnicate', s], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('unknown command', p.stderr)


if __name__ == '__main__':
    unittest.main(argv=[sys.argv[0], '-v'])
