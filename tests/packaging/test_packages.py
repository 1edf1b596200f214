#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Debian packages, end to end, on this machine (as root; minutes):

 1. copies the checkout (tracked and untracked, not ignored, files) to a
    temporary directory and builds hfleet-coordinator, hfleet-worker and
    hfleet-client there with "dpkg-buildpackage -us -uc -b";
 2. runs lintian on them: an error fails, warnings are listed;
 3. installs them (dpkg -i) and checks what the maintainer scripts did:
    the hfleet user, the render group, the worker's directories, the units
    in place but neither enabled nor started, "systemd-analyze verify" of
    the installed units, the man pages found by man;
 4. starts hf-coordinator and hf-worker from the installed binaries and
    configurations, as the hfleet user, against a private PostgreSQL
    (tests/integration/harness.py) on free ports, with tokens made by the
    installed coordinator; submits a job of the registry's two smallest
    models on cpu with the installed hfctl and waits for it to finish (a
    worker without PyTorch reports the tasks skipped: that is a finished
    job); stops both daemons (exit status 0);
 5. purges the packages and checks that nothing of them is left but the
    hfleet user and group (Debian leaves system users in place).

Packages of hfleet already installed are refused (remove them first), so
that the test never takes over a real install.

  tests/packaging/test_packages.py [--keep]   (--keep: leave the build)"""
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, 'tests', 'integration'))
import harness  # noqa: E402

PACKAGES = ['hfleet-coordinator', 'hfleet-worker', 'hfleet-client']
# What the packages put on the system; none of it may be left after purge.
INSTALLED = ['/usr/bin/hf-coordinator', '/usr/bin/hf-worker', '/usr/bin/hfctl',
             '/lib/systemd/system/hf-coordinator.service',
             '/lib/systemd/system/hf-worker.service', '/etc/hfleet',
             '/usr/lib/sysusers.d/hfleet-coordinator.conf',
             '/usr/lib/sysusers.d/hfleet-worker.conf', '/usr/lib/tmpfiles.d/hfleet-worker.conf',
             '/usr/share/hfleet', '/usr/share/doc/hfleet', '/var/lib/hfleet-worker',
             '/var/cache/hfleet-worker', '/usr/share/bash-completion/completions/hfctl',
             '/usr/share/zsh/vendor-completions/_hfctl', '/usr/share/man/man1/hfctl.1.gz',
             '/usr/share/man/man5/hfleet.conf.5.gz', '/usr/share/man/man8/hf-worker.8.gz',
             '/usr/share/man/man8/hf-coordinator.8.gz']
CLEAN_ENV = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LANG': 'C.UTF-8'}


def step(msg):
    print('== %s' % msg, flush=True)


def run(argv, **kw):
    kw.setdefault('check', True)
    return subprocess.run(argv, **kw)


def installed(pkg):
    r = run(['dpkg-query', '-W', '-f=${Status}', pkg], check=False, capture_output=True,
            text=True)
    return 'installed' in r.stdout or 'config-files' in r.stdout


class Failures:
    def __init__(self):
        self.items = []

    def __call__(self, msg):
        print('FAIL', msg, flush=True)
        self.items.append(msg)


fail = Failures()


def build(work):
    step('building the packages in %s' % work)
    src = os.path.join(work, 'hfleet-0.1.0')
    files = run(['git', '-C', SOURCE, 'ls-files', '-co', '--exclude-standard', '-z'],
                capture_output=True).stdout.split(b'\0')
    for f in files:
        path = os.path.join(SOURCE.encode(), f)
        if f and os.path.isfile(path):
            dst = os.path.join(src.encode(), f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(path, dst)
    t = time.monotonic()
    with open(os.path.join(work, 'build.log'), 'w') as log:
        r = run(['nice', 'dpkg-buildpackage', '-us', '-uc', '-b'], cwd=src, stdout=log,
                stderr=subprocess.STDOUT, check=False)
    if r.returncode != 0:
        print(open(os.path.join(work, 'build.log')).read()[-6000:])
        sys.exit('dpkg-buildpackage failed (log: %s/build.log)' % work)
    debs = sorted(glob.glob(os.path.join(work, '*.deb')))
    names = sorted(os.path.basename(d).split('_')[0] for d in debs)
    print('built in %.0f s: %s' % (time.monotonic() - t, ' '.join(map(os.path.basename, debs))))
    # dbgsym packages come along when debhelper makes them: only ours count.
    if not set(PACKAGES) <= set(names):
        sys.exit('missing packages: %s' % sorted(set(PACKAGES) - set(names)))
    ours = [d for d in debs if os.path.basename(d).split('_')[0] in PACKAGES]
    # The users and directories come from the maintainer scripts (a user
    # left by an earlier install would hide their absence on this machine).
    for deb in ours:
        name = os.path.basename(deb).split('_')[0]
        if name == 'hfleet-client':
            continue
        postinst = run(['dpkg-deb', '--ctrl-tarfile', deb], capture_output=True).stdout
        script = run(['tar', '-xOf', '-', './postinst'], input=postinst,
                     capture_output=True).stdout.decode()
        for want in ['systemd-sysusers'] + (['systemd-tmpfiles'] if name == 'hfleet-worker' else []):
            if want not in script:
                fail('%s: postinst does not run %s' % (name, want))
        if 'sysusers' in script and script.index('sysusers') > script.find('tmpfiles') >= 0:
            fail('%s: postinst makes the directories before the user' % name)
    return ours


def lint(work):
    step('lintian')
    changes = glob.glob(os.path.join(work, '*.changes'))
    r = run(['lintian', '--tag-display-limit', '0', '--info', '--pedantic'] + changes, capture_output=True,
            text=True, check=False)
    tags = [line for line in r.stdout.splitlines() if re.match(r'[EWIXPO]: ', line)]
    for line in tags:
        print('  ' + line)
    errors = [line for line in tags if line.startswith('E: ')]
    if errors:
        fail('lintian: %d errors' % len(errors))
    if r.returncode not in (0, 1) or (r.returncode == 1 and not errors):
        fail('lintian exited %d: %s' % (r.returncode, r.stderr.strip()[-2000:]))
    print('lintian: %d errors, %d warnings' % (
        len(errors), sum(1 for line in tags if line.startswith('W: '))))


def check_installed():
    step('checking the install')
    try:
        user = pwd.getpwnam('hfleet')
    except KeyError:
        fail('no hfleet user after install')
        return
    for g in ('hfleet', 'render', 'video'):
        try:
            grp.getgrnam(g)
        except KeyError:
            fail('no %s group after install' % g)
    for d in ('/var/lib/hfleet-worker', '/var/cache/hfleet-worker'):
        st = os.stat(d) if os.path.isdir(d) else None
        if not st or st.st_uid != user.pw_uid or st.st_mode & 0o777 != 0o750:
            fail('%s: not a 0750 directory of hfleet' % d)
    for path in INSTALLED:
        if not os.path.exists(path):
            fail('not installed: %s' % path)
    for unit in ('hf-coordinator.service', 'hf-worker.service'):
        if glob.glob('/etc/systemd/system/*.wants/' + unit):
            fail('%s is enabled at install' % unit)
        r = run(['systemd-analyze', 'verify', '--man=yes', '/lib/systemd/system/' + unit],
                capture_output=True, text=True, check=False)
        own = [line for line in (r.stdout + r.stderr).splitlines() if unit in line]
        if own:
            fail('systemd-analyze verify %s: %s' % (unit, '; '.join(own)))
        r = run(['systemd-analyze', 'security', '--offline=yes', '--no-pager',
                 '/lib/systemd/system/' + unit], capture_output=True, text=True, check=False)
        m = re.search(r'Overall exposure level for \S+: (\d+\.\d+)', r.stdout)
        print('systemd-analyze security %s: %s' % (unit, m.group(1) if m else '?'))
    for page in ('hfctl', 'hf-coordinator', 'hf-worker', 'hfleet.conf'):
        if run(['man', '-w', page], capture_output=True, check=False).returncode != 0:
            fail('man -w %s finds no page' % page)


def as_hfleet(argv, env=CLEAN_ENV):
    """argv as the hfleet user with its groups and only env, as the unit
    runs it; setpriv and env exec, so the process is the daemon itself (a
    signal reaches it, its exit status is ours)."""
    return ['setpriv', '--reuid=hfleet', '--regid=hfleet', '--init-groups', 'env', '-i'] + [
        '%s=%s' % kv for kv in env.items()] + argv


def smallest_models(n):
    with open('/usr/share/hfleet/models.tsv') as f:
        rows = [line.rstrip('\n').split('\t') for line in f][1:]
    return [r[0] for r in rows if len(r) > 5 and r[5] == 'tiny'][:n]


def run_job(work):
    step('a job through the installed daemons')
    os.chmod(work, 0o755)
    pg = harness.PrivatePostgres(work)
    logs = {}
    procs = {}
    shown = []
    try:
        wport, cport, hport = harness.free_port(), harness.free_port(), harness.free_port()
        coord = ['/usr/bin/hf-coordinator', '-c', '/etc/hfleet/hf-coordinator.conf',
                 '--database', pg.conninfo,
                 '--worker-listen', 'tcp://127.0.0.1:%d' % wport,
                 '--control-listen', 'tcp://127.0.0.1:%d' % cport,
                 '--http-listen', 'http://127.0.0.1:%d' % hport]
        admin = run(as_hfleet(coord + ['--create-token', 'pkg-admin', '--role', 'admin']),
                    capture_output=True, text=True).stdout.strip()
        wtoken = run(as_hfleet(coord + ['--create-token', 'pkg-worker', '--role', 'worker']),
                     capture_output=True, text=True).stdout.strip()
        # The worker reads the token file its installed configuration names.
        with open('/etc/hfleet/worker.token', 'w') as f:
            f.write(wtoken + '\n')
        os.chown('/etc/hfleet/worker.token', pwd.getpwnam('hfleet').pw_uid, -1)
        os.chmod('/etc/hfleet/worker.token', 0o600)
        admin_file = os.path.join(work, 'admin.token')
        with open(admin_file, 'w') as f:
            f.write(admin + '\n')
        os.chmod(admin_file, 0o600)

        for name, argv in (('coordinator', coord), ('worker', [
                '/usr/bin/hf-worker', '-c', '/etc/hfleet/hf-worker.conf',
                '--coordinator-url', 'tcp://127.0.0.1:%d' % wport, '--id', 'pkg-worker'])):
            logs[name] = open(os.path.join(work, name + '.log'), 'w+')
            env = dict(CLEAN_ENV, HF_HOME='/var/cache/hfleet-worker/huggingface')
            procs[name] = subprocess.Popen(as_hfleet(argv, env), stdout=logs[name],
                                           stderr=subprocess.STDOUT, cwd='/')
            if name == 'coordinator':
                wait_listening(procs[name], cport)

        def hfctl(*args):
            return run(['/usr/bin/hfctl', '--control', 'tcp://127.0.0.1:%d' % cport,
                        '--token-file', admin_file] + list(args), capture_output=True,
                       text=True, env=CLEAN_ENV, check=False, timeout=300)

        # The coordinator answering is ours: it knows our worker, by name.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = hfctl('--json', 'workers')
            if r.returncode == 0 and '"pkg-worker"' in r.stdout and '"connected": true' in \
                    r.stdout.replace('":true', '": true'):
                break
            time.sleep(0.5)
        else:
            fail('the worker did not register: %s' % r.stdout[-500:])
            return
        who = hfctl('whoami')
        if 'pkg-admin' not in who.stdout:
            fail('hfctl whoami: %s %s' % (who.stdout, who.stderr))
        models = smallest_models(2)
        r = hfctl('submit', '--models', ','.join(models), '--backends', 'cpu',
                  '--task-timeout', '2m', '--watch')
        shown.append(r.stdout + r.stderr)
        m = re.search(r'job (\d+)', r.stdout + r.stderr)
        if not m:
            fail('hfctl submit --watch: no job id (exit %d)' % r.returncode)
            return
        res = hfctl('results', m.group(1), '--csv')
        shown.append(res.stdout)
        status = hfctl('--json', 'status', m.group(1))
        if '"done"' not in status.stdout:
            fail('job %s did not finish: %s' % (m.group(1), status.stdout))
        if not re.search(r'\b(passed|skipped)\b', res.stdout):
            fail('job %s: no task passed or was skipped' % m.group(1))
    finally:
        for name in ('worker', 'coordinator'):
            p = procs.get(name)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    fail('%s did not stop on SIGTERM' % name)
            if p and p.returncode != 0:
                fail('%s exited %d' % (name, p.returncode))
            if name in logs and fail.items:
                logs[name].seek(0)
                text = logs[name].read()
                print('--- %s log (last lines)\n%s' % (name, '\n'.join(
                    text.splitlines()[-15:])))
        # The job's output and the logs only when something failed: CI reads
        # lines such as "passed in 0.1 s" as a test runner's closing line.
        if fail.items:
            print('\n'.join(shown))
        else:
            print('a job ran through the installed daemons')
        pg.stop()


def wait_listening(proc, port):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail('the coordinator exited %d at start' % proc.returncode)
            raise SystemExit(1)
        try:
            import socket
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    fail('the coordinator does not listen on %d' % port)
    raise SystemExit(1)


def purge():
    step('purging the packages')
    run(['dpkg', '--purge'] + PACKAGES, stdout=subprocess.DEVNULL)
    for pkg in PACKAGES:
        if installed(pkg):
            fail('%s is still known to dpkg after purge' % pkg)
    for path in INSTALLED:
        if os.path.lexists(path):
            fail('left after purge: %s' % path)
    left = glob.glob('/etc/systemd/system/*/hf-*.service') + glob.glob('/var/lib/systemd/deb-systemd-helper-enabled/**/hf-*', recursive=True)
    for path in left:
        fail('left after purge: %s' % path)
    print('left on purpose: the hfleet user and group (%s)' % (
        'present' if user_exists() else 'absent'))


def user_exists():
    try:
        pwd.getpwnam('hfleet')
        return True
    except KeyError:
        return False


def main():
    keep = '--keep' in sys.argv[1:]
    if os.geteuid() != 0:
        sys.exit('test_packages: needs root (dpkg -i)')
    for tool in ('dpkg-buildpackage', 'dh', 'lintian', 'scdoc'):
        if not shutil.which(tool):
            sys.exit('test_packages: %s is missing (deploy/install-deps.sh --packaging)' % tool)
    there = [p for p in PACKAGES if installed(p)]
    if there:
        sys.exit('test_packages: %s already installed; remove them first '
                 '(dpkg --purge %s)' % (' '.join(there), ' '.join(there)))
    work = tempfile.mkdtemp(prefix='hfleet-packages-')
    t0 = time.monotonic()
    try:
        debs = build(work)
        lint(work)
        step('dpkg -i')
        run(['dpkg', '-i'] + debs, stdout=subprocess.DEVNULL)
        try:
            check_installed()
            run_job(work)
        finally:
            purge()
    finally:
        if keep or fail.items:
            print('kept: %s' % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    # Worded so that no test runner's closing line is read into it (CI reads
    # those): the one closing line is run-tests.sh's.
    print('package test: %s after %.0f s' % ('FAILED (%d)' % len(fail.items) if fail.items else 'ok',
                                             time.monotonic() - t0))
    sys.exit(1 if fail.items else 0)


if __name__ == '__main__':
    main()
