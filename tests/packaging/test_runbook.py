#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs the runbook of docs/operations.md, every marked command of it, on a
real installation (as root; about two minutes):

 1. reads docs/operations.md: every ```sh block must follow a marker line,
    either <!-- runbook: NAME --> (run here, in document order) or
    <!-- not run: WHY --> (WHY says which test covers it); a block without
    a marker, a step missing from STEPS below or one STEPS has but the
    document does not, and an alert of deploy/prometheus/alerts.yml without
    a row in the runbook's alert table all fail the test, so the document
    and this test cannot drift apart;
 2. builds the Debian packages (test_packages.build) and an image booting
    systemd as PID 1 (tests/packaging/Containerfile.runbook, on the minbase
    image of tests/deploy/test_images.py), then starts it with rootful
    podman (runc, limits no higher than ours: test_images.engine_conf), with
    no network, host name gpu-07 and coord.example.net pointing at itself;
 3. runs each runbook step there as root with bash -euo pipefail, in the
    directory holding the three packages and fleet-certs.sh (read-only),
    and after it this test's check of what the step must have done
    (CHECKS): the units active under systemd, their status text, the worker
    registered, the job done, the old token refused, TLS in use, the
    restored database holding the job, ...

On failure the step's output and the journal's last lines are printed.

  tests/packaging/test_runbook.py [--keep]   (--keep: leave the container)
  tests/packaging/test_runbook.py --check-doc   (step 1 only: seconds, no
                                                root; suite "install")"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DOC = os.path.join(SOURCE, 'docs', 'operations.md')
ALERTS = os.path.join(SOURCE, 'deploy', 'prometheus', 'alerts.yml')
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SOURCE, 'tests', 'deploy'))
import test_packages  # noqa: E402
import test_images  # noqa: E402

IMAGE = 'localhost/hfleet-runbook-systemd:test'
RELEASE = '/srv/hfleet-release'

# The runbook's steps in document order.  Renaming, adding or removing a
# step in docs/operations.md must be done here too (and a check written).
STEPS = ['install-coordinator', 'create-database', 'first-admin-token', 'start-coordinator',
         'install-worker', 'first-job', 'drain', 'undrain', 'restart-coordinator',
         'upgrade-worker', 'upgrade-coordinator', 'rotate-worker-token', 'rotate-admin-token',
         'tls-on', 'rotate-tls-certificate', 'rotate-database-password', 'backup',
         'restore']

MARK = re.compile(r'^<!-- (runbook|not run): *(.*?) *-->$')


def parse(path):
    """[(name, text, line)] of the runbook steps; errors for what drifted."""
    lines = open(path).read().splitlines()
    steps, errors = [], []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith('```sh'):
            start = i
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != '```':
                body.append(lines[i])
                i += 1
            j = start - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            m = MARK.match(lines[j].strip()) if j >= 0 else None
            if not m:
                errors.append('line %d: a ```sh block without <!-- runbook: NAME --> or '
                              '<!-- not run: WHY -->' % (start + 1))
            elif m.group(1) == 'runbook':
                indent = len(lines[start]) - len(lines[start].lstrip())
                steps.append((m.group(2), '\n'.join(b[indent:] for b in body), start + 1))
            elif not m.group(2):
                errors.append('line %d: <!-- not run --> must say why' % (j + 1))
        i += 1
    names = [s[0] for s in steps]
    if names != STEPS:
        errors.append('the runbook steps of %s are %s; test_runbook.STEPS has %s' % (
            path, names, STEPS))
    alerts = re.findall(r'- alert: (\w+)', open(ALERTS).read())
    text = '\n'.join(lines)
    for a in alerts:
        if not re.search(r'^\| `%s` \|.*\|' % a, text, re.M):
            errors.append('alert %s of %s has no row in the runbook\'s alert table' % (a, ALERTS))
    return steps, errors


class Machine:
    """The container booting systemd; commands run in it as root."""

    def __init__(self, name):
        self.name = name

    def sh(self, script, check=True, timeout=180):
        r = subprocess.run(['podman', 'exec', '-i', '-w', RELEASE, self.name, 'bash', '-l', '-euo',
                            'pipefail', '-s'], input=script, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError('exit %d: %s\n%s' % (r.returncode, script, (r.stdout + r.stderr)[-3000:]))
        return r

    def out(self, script):
        return self.sh(script).stdout

    def hfctl_json(self, *args):
        return json.loads(self.out('hfctl --json ' + ' '.join(args)))

    def wait(self, what, pred, timeout=60):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                last = pred()
                if last:
                    return last
            except (AssertionError, ValueError, KeyError) as e:
                last = e
            time.sleep(0.5)
        raise AssertionError('timed out waiting for %s (last: %s)' % (what, str(last)[-1500:]))

    def unit(self, unit, *props):
        r = self.out('systemctl show %s %s' % (unit, ' '.join('-p ' + p for p in props)))
        return dict(line.split('=', 1) for line in r.splitlines() if '=' in line)


def worker(m, wid='gpu-07'):
    for w in m.hfctl_json('workers'):
        if w.get('worker_id') == wid:
            return w
    return None


def active(m, unit):
    p = m.unit(unit, 'ActiveState', 'SubState', 'StatusText', 'NRestarts', 'MainPID')
    assert p['ActiveState'] == 'active', '%s: %s' % (unit, p)
    return p


# What each step must have done, checked after it ran.  state carries what
# a later check compares with (the job of first-job, the certificate's
# fingerprint) and lines for the report printed at the end.
def c_install_coordinator(m, state):
    m.sh('dpkg -s hfleet-coordinator hfleet-client >/dev/null; getent passwd hfleet >/dev/null')
    p = m.unit('hf-coordinator', 'UnitFileState', 'ActiveState')
    assert p == {'UnitFileState': 'disabled', 'ActiveState': 'inactive'}, p


def c_create_database(m, state):
    m.sh("sudo -u postgres psql -tAc \"SELECT 1 FROM pg_database WHERE datname='hfleet'\" | grep -qx 1")


def c_first_admin_token(m, state):
    mode = m.out('stat -c %a ~/.config/hfleet/token').strip()
    assert mode == '600', mode
    assert m.out('wc -c < ~/.config/hfleet/token').strip() != '0'


def c_start_coordinator(m, state):
    p = active(m, 'hf-coordinator')
    q = m.unit('hf-coordinator', 'Type', 'NotifyAccess', 'WatchdogUSec', 'UnitFileState', 'User')
    assert q['Type'] == 'notify' and q['WatchdogUSec'] == '1min' and q['UnitFileState'] == 'enabled', q
    assert re.match(r'\d+ workers connected', p['StatusText']), p
    assert 'ops (admin' in m.out('hfctl whoami')
    state['report'].append('hf-coordinator under systemd: %s, watchdog %s, status "%s"' % (
        q['Type'], q['WatchdogUSec'], p['StatusText']))


def c_install_worker(m, state):
    m.wait('gpu-07 connected', lambda: (worker(m) or {}).get('connected'))
    # The status text follows within 2 s.
    p = m.wait('hf-worker\'s status "registered"', lambda: active(m, 'hf-worker')['StatusText'].startswith(
        'registered with tcp://127.0.0.1:7100 as gpu-07') and active(m, 'hf-worker'), 10)
    assert m.out('stat -c %a:%U /etc/hfleet/worker.token').strip() == '600:hfleet'
    state['report'].append('hf-worker under systemd: status "%s"' % p['StatusText'])


def job_status(m, job):
    return m.hfctl_json('status', str(job))


def c_first_job(m, state):
    jobs = m.hfctl_json('jobs')
    assert jobs, 'no job'
    state['job'] = jobs[0]['job_id']
    st = job_status(m, state['job'])
    assert st.get('state') == 'done', st


def c_drain(m, state):
    w = worker(m)
    assert w.get('drained'), w


def c_undrain(m, state):
    w = worker(m)
    assert not (w.get('drained')), w


def c_restart_coordinator(m, state):
    # The job submitted while the worker was drained ran after the restart.
    jobs = m.hfctl_json('jobs')
    assert len(jobs) >= 2, jobs
    for j in jobs:
        jid = j['job_id']
        m.wait('job %s done' % jid, lambda: job_status(m, jid).get('state') == 'done', 90)
    active(m, 'hf-coordinator')


def starts(m, unit, what):
    return m.out('journalctl -u %s -o cat --no-pager' % unit).count(what)


def c_upgrade_worker(m, state):
    # The package restarted it: started at install-worker and by the upgrade.
    n = starts(m, 'hf-worker', 'hf-worker 0.1.0 starting as')
    assert n == 2, 'hf-worker started %d times, not 2: the upgrade did not restart it' % n
    m.wait('gpu-07 connected and undrained', lambda: (worker(m) or {}).get('connected') and not (
        worker(m).get('drained')))
    active(m, 'hf-worker')


def c_upgrade_coordinator(m, state):
    n = starts(m, 'hf-coordinator', 'hf-coordinator 0.1.0 starting')
    assert n == 3, 'hf-coordinator started %d times, not 3: the upgrade did not restart it' % n
    active(m, 'hf-coordinator')
    m.wait('gpu-07 connected', lambda: (worker(m) or {}).get('connected'))


def tokens(m, name):
    return [t for t in m.hfctl_json('token', 'list') if t['name'] == name]


def c_rotate_worker_token(m, state):
    live = tokens(m, 'gpu-07')
    assert len(live) == 1, live
    # Past the window in which a worker that stopped polling still counts
    # as connected: the worker polls with its new token, the old one is gone.
    time.sleep(6)
    assert (worker(m) or {}).get('connected'), worker(m)
    p = active(m, 'hf-worker')
    assert p['NRestarts'] == '0', p
    log = m.out('journalctl -u hf-worker -n 40 -o cat --no-pager')
    assert 'refused' not in log.split('hf-worker stopped')[-1], log


def c_rotate_admin_token(m, state):
    live = tokens(m, 'ops')
    assert len(live) == 1 and live[0]['role'] == 'admin', live
    assert 'ops (admin, token %s)' % live[0]['id'] in m.out('hfctl whoami')


def c_tls_on(m, state):
    p = active(m, 'hf-coordinator')
    assert 'tls+tcp://' in m.out('journalctl -u hf-coordinator -n 30 --no-pager -o cat | grep ready:'), p
    m.wait('gpu-07 connected over TLS', lambda: (worker(m) or {}).get('connected') and 'tls+tcp://coord.example.net:7100' in active(m, 'hf-worker')['StatusText'])
    # The control port no longer speaks clear text.
    r = m.sh('hfctl --control tcp://127.0.0.1:7101 --request-timeout 3s whoami', check=False)
    assert r.returncode != 0, r.stdout
    state['crt'] = m.out('openssl x509 -noout -fingerprint -sha256 -in /etc/hfleet/pki/coordinator.crt').strip()


def c_rotate_tls_certificate(m, state):
    old = state['crt']
    c_tls_on(m, state)
    assert state['crt'] != old, 'the coordinator certificate is the same'
    # The coordinator serves the new one.
    served = m.out('openssl s_client -connect 127.0.0.1:7101 -servername coord.example.net '
                   '</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256')
    assert served.strip() == state['crt'], (served, state['crt'])


def c_rotate_database_password(m, state):
    active(m, 'hf-coordinator')
    # hf-coordinator is connected over TCP with the password of coordinator.env,
    # which logs in; another does not.
    n = m.out("sudo -u postgres psql -tAc \"SELECT count(*) FROM pg_stat_activity WHERE "
              "usename = 'hfleet' AND client_addr IS NOT NULL\"").strip()
    assert n != '0', 'the coordinator has no TCP session'
    m.sh("set -a; . /etc/hfleet/coordinator.env; psql \"$HFLEET_DATABASE_URL\" -tAc 'SELECT 1' | grep -qx 1")
    r = m.sh("PGPASSWORD=wrong psql -h 127.0.0.1 -U hfleet -d hfleet -tAc 'SELECT 1'", check=False)
    assert r.returncode != 0, 'a wrong database password logs in'
    assert m.hfctl_json('status', str(state['job'])).get('state') == 'done'


def c_backup(m, state):
    m.sh('test -s /var/backups/hfleet/hfleet.dump && test -s /var/backups/hfleet/hfleet-files.tar')


def c_restore(m, state):
    active(m, 'hf-coordinator')
    assert m.hfctl_json('status', str(state['job'])).get('state') == 'done'
    m.wait('gpu-07 connected', lambda: (worker(m) or {}).get('connected'))


CHECKS = {name: globals()['c_' + name.replace('-', '_')] for name in STEPS}


def image(work):
    test_images.engine_conf(work)
    test_images.base_image()
    r = subprocess.run(['podman', 'build', '--build-arg', 'DEBIAN=' + test_images.BASE, '-f',
                        os.path.join(HERE, 'Containerfile.runbook'), '-t', IMAGE, HERE],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit('podman build of the runbook image failed:\n' + (r.stdout + r.stderr)[-3000:])


def main():
    keep = '--keep' in sys.argv[1:]
    steps, errors = parse(DOC)
    for e in errors:
        print('FAIL', e)
    if errors:
        sys.exit(1)
    if '--check-doc' in sys.argv[1:]:
        print('%d runbook steps in %s, every sh block marked, every alert in the table' % (
            len(steps), DOC))
        return
    if os.geteuid() != 0:
        sys.exit('test_runbook: needs root (rootful podman)')
    for tool in ('podman', 'mmdebstrap', 'dpkg-buildpackage'):
        if not shutil.which(tool):
            sys.exit('test_runbook: %s is missing (deploy/install-deps.sh --packaging; '
                     'apt-get install podman runc mmdebstrap)' % tool)
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix='hfleet-runbook-')
    os.chmod(work, 0o755)
    name = 'hfleet-runbook-%d' % os.getpid()
    failed = True
    state = {'report': []}
    try:
        debs = test_packages.build(work)
        release = os.path.join(work, 'release')
        os.mkdir(release)
        for d in debs + [os.path.join(SOURCE, 'deploy', 'fleet-certs.sh')]:
            shutil.copy2(d, release)
        image(work)
        print('== packages and image ready in %.0f s' % (time.monotonic() - t0), flush=True)
        subprocess.run(['podman', 'run', '-d', '--name', name, '--systemd=always', '--network',
                        'none', '--hostname', 'gpu-07', '-v', '%s:%s:ro' % (release, RELEASE),
                        IMAGE], check=True, stdout=subprocess.DEVNULL)
        m = Machine(name)
        m.wait('systemd running', lambda: m.sh('systemctl is-system-running', check=False)
               .stdout.strip() in ('running', 'degraded'), 60)
        m.sh('echo "127.0.0.1 coord.example.net" >> /etc/hosts')
        for step, text, line in steps:
            t = time.monotonic()
            r = m.sh(text, check=False, timeout=240)
            print('== %s (operations.md:%d): exit %d in %.1f s' % (step, line, r.returncode,
                                                                   time.monotonic() - t), flush=True)
            if r.returncode != 0:
                print(text)
                print((r.stdout + r.stderr)[-4000:])
                raise AssertionError('runbook step %s failed' % step)
            CHECKS[step](m, state)
        restarts = m.out('systemctl show -p NRestarts --value hf-coordinator hf-worker').split()
        state['report'].append('restarts by systemd (coordinator, worker): %s' % ' '.join(restarts))
        failed = False
    except AssertionError as e:
        print('FAIL', e)
        subprocess.run(['podman', 'exec', name, 'journalctl', '--no-pager', '-n', '60', '-u',
                        'hf-coordinator', '-u', 'hf-worker'], check=False)
    finally:
        for line in state['report']:
            print('  ' + line)
        if keep:
            print('kept: container %s, %s' % (name, work))
        else:
            subprocess.run(['podman', 'rm', '-f', '-t', '0', name], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(work, ignore_errors=True)
    # Worded so that no test runner's closing line is read into it (CI reads
    # those): the one closing line is run-tests.sh's.
    print('runbook test: %s after %.0f s' % ('FAILED' if failed else 'ok', time.monotonic() - t0))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
