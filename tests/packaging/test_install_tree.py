#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
""""meson install --destdir" of this build puts every file in place, and the
files agree with each other and with the install's paths:

- the binaries, runners, registry, units, configurations, sysusers.d and
  tmpfiles.d entries, completion, man pages (when scdoc was found) and docs
  are all there;
- the units run the installed binaries with the installed configurations,
  name only installed man pages and docs, and pass "systemd-analyze verify"
  (against the destdir as root) and "systemd-analyze security" within the
  scores docs/operations.md states;
- the worker's configuration loads (hf-worker -c ... --print-config), its
  runner is the installed one, and its state and cache directories are the
  ones tmpfiles.d makes and the unit may write;
- the completion's registry is the installed one.

The install's paths come from meson (HF_PREFIX, HF_BINDIR, ... in the
environment); the listing of the destdir is printed."""
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile

failures = []
SECURITY_LIMITS = {'hf-coordinator.service': 4.0, 'hf-worker.service': 6.0}


def fail(msg):
    failures.append(msg)
    print('FAIL', msg)


def main():
    env = os.environ
    build = env['HF_BUILD_ROOT']
    p = {k: env['HF_' + k.upper()] for k in (
        'prefix', 'bindir', 'datadir', 'mandir', 'sysconfdir', 'localstatedir', 'unitdir',
        'bashcompletiondir', 'zshcompletiondir')}
    man = env.get('HF_MAN') == '1'
    dest = tempfile.mkdtemp(prefix='hfleet-destdir-')
    try:
        subprocess.run(['meson', 'install', '-C', build, '--no-rebuild', '--quiet',
                        '--destdir', dest], check=True, stdout=subprocess.DEVNULL)
        check_tree(dest, p, man)
    finally:
        shutil.rmtree(dest)
    print('%d failures' % len(failures))
    sys.exit(1 if failures else 0)


def check_tree(dest, p, man):
    def at(path):
        return os.path.join(dest, path.lstrip('/'))

    listing = sorted(os.path.relpath(os.path.join(d, f), dest)
                     for d, _, files in os.walk(dest) for f in files)
    print('\n'.join('/' + f for f in listing))

    runner_dir = os.path.join(p['datadir'], 'hfleet', 'runners')
    state_dir = os.path.join(p['localstatedir'], 'lib', 'hfleet-worker')
    cache_dir = os.path.join(p['localstatedir'], 'cache', 'hfleet-worker')
    lib = os.path.join(p['prefix'], 'lib')
    want = [os.path.join(p['bindir'], b) for b in ('hf-coordinator', 'hf-worker', 'hfctl')]
    want += [os.path.join(runner_dir, r) for r in (
        'hfleet_runner.py', 'hfleet_runner_lib.py', 'hfleet_runner_torch.py',
        'hfleet_recipes.py', 'hfleet_recipe_base.py', 'hfleet_recipes_config.py', 'hfleet_recipes_vlm.py',
        'hfleet_recipes_vision.py', 'hfleet_recipes_audio.py', 'hfleet_recipes_rag.py', 'hfleet_recipes_video.py',
        'hfleet_health.py')]
    want += [os.path.join(p['datadir'], 'hfleet', 'models.tsv')]
    want += [os.path.join(p['unitdir'], u) for u in SECURITY_LIMITS]
    want += [os.path.join(p['sysconfdir'], 'hfleet', c)
             for c in ('hf-coordinator.conf', 'hf-worker.conf')]
    want += [os.path.join(lib, 'sysusers.d', 'hfleet-coordinator.conf'),
             os.path.join(lib, 'sysusers.d', 'hfleet-worker.conf'),
             os.path.join(lib, 'tmpfiles.d', 'hfleet-worker.conf'),
             os.path.join(p['bashcompletiondir'], 'hfctl'),
             os.path.join(p['zshcompletiondir'], '_hfctl')]
    docdir = os.path.join(p['datadir'], 'doc', 'hfleet')
    # Every document of docs/ (docs/meson.build lists them by name).
    source_docs = os.path.join(os.environ['HF_SOURCE_ROOT'], 'docs')
    want += [os.path.join(docdir, d) for d in os.listdir(source_docs) if d.endswith('.md')]
    if man:
        want += [os.path.join(p['mandir'], m) for m in (
            'man1/hfctl.1', 'man5/hfleet.conf.5', 'man8/hf-coordinator.8', 'man8/hf-worker.8')]
    for w in want:
        if not os.path.isfile(at(w)):
            fail('not installed: %s' % w)
    # Every hfleet_* module an installed runner file imports is installed
    # beside it (a module added to the runner but not to install_data
    # would fail only on a packaged worker, at its first task).
    runners = at(runner_dir)
    for f in sorted(os.listdir(runners)) if os.path.isdir(runners) else []:
        if not f.endswith('.py'):
            continue
        tree = ast.parse(open(os.path.join(runners, f), encoding='utf-8').read(), f)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if name.startswith('hfleet_') and not os.path.isfile(os.path.join(runners, name + '.py')):
                    fail('%s imports %s, which is not installed beside it' % (f, name))
    for f in listing:
        text = open(os.path.join(dest, f), 'rb').read()
        # (A program's constants may hold any bytes, "@p@" among them.)
        if re.search(rb'@[a-z_]+@', text) and not f.endswith('.py') and not text.startswith(b'\x7fELF'):
            fail('/%s holds an unreplaced @name@' % f)
        if p['prefix'] == '/usr' and b'/usr/local' in text and not f.endswith('.md'):
            fail('/%s names /usr/local in a /usr install' % f)

    # The units: installed binaries, configurations, man pages and docs.
    for unit in SECURITY_LIMITS:
        path = at(os.path.join(p['unitdir'], unit))
        text = open(path).read()
        daemon = unit.split('.')[0]
        exec_start = re.search(r'^ExecStart=(\S+) -c (\S+)$', text, re.M)
        if not exec_start:
            fail('%s: no "ExecStart=BINARY -c CONF"' % unit)
            continue
        if exec_start.group(1) != os.path.join(p['bindir'], daemon):
            fail('%s runs %s' % (unit, exec_start.group(1)))
        if exec_start.group(2) != os.path.join(p['sysconfdir'], 'hfleet', daemon + '.conf'):
            fail('%s reads %s' % (unit, exec_start.group(2)))
        for doc in re.search(r'^Documentation=(.*)$', text, re.M).group(1).split():
            m = re.fullmatch(r'man:([\w.-]+)\((\d)\)', doc)
            if m:
                page = os.path.join(p['mandir'], 'man' + m.group(2),
                                    '%s.%s' % (m.group(1), m.group(2)))
                if man and not os.path.isfile(at(page)):
                    fail('%s: Documentation=%s is not installed' % (unit, doc))
            elif doc.startswith('file://'):
                if not os.path.isfile(at(doc[len('file://'):])):
                    fail('%s: Documentation=%s is not installed' % (unit, doc))
            else:
                fail('%s: Documentation=%s is neither man: nor file://' % (unit, doc))
        for group in re.findall(r'^SupplementaryGroups=(.*)$', text, re.M):
            for g in group.split():
                if g != 'video' and g not in sysusers_groups(at(lib)):
                    fail('%s: group %s is made by no sysusers.d entry' % (unit, g))
        verify(dest, path, unit)
        security(path, unit)

    worker_unit = open(at(os.path.join(p['unitdir'], 'hf-worker.service'))).read()
    rw = re.search(r'^ReadWritePaths=(.*)$', worker_unit, re.M).group(1).split()
    tmpfiles = open(at(os.path.join(lib, 'tmpfiles.d', 'hfleet-worker.conf'))).read()
    for d in (state_dir, cache_dir):
        if d not in rw:
            fail('hf-worker.service: %s is not in ReadWritePaths=' % d)
        if not re.search(r'^d %s 0750 hfleet hfleet' % re.escape(d), tmpfiles, re.M):
            fail('tmpfiles.d/hfleet-worker.conf does not make %s' % d)

    # The worker's configuration loads and names the installed runner and
    # the directories above.
    conf = at(os.path.join(p['sysconfdir'], 'hfleet', 'hf-worker.conf'))
    r = subprocess.run([os.path.join(os.environ['HF_BUILD_ROOT'], 'worker', 'hf-worker'),
                        '-c', conf, '--print-config'], capture_output=True, text=True,
                       env={'PATH': '/usr/bin:/bin'})
    if r.returncode != 0:
        fail('hf-worker -c %s --print-config: %s' % (conf, r.stderr.strip()))
    else:
        settings = dict(re.findall(r'^(\w+) = (.*)$', r.stdout, re.M))
        # A runner.command made from runner.python is printed commented out.
        derived = re.search(r'^# command = (.*)$', r.stdout, re.M)
        if 'command' not in settings and derived:
            settings['command'] = derived.group(1)
        runner = os.path.join(runner_dir, 'hfleet_runner.py')
        if settings.get('command', '').split()[-1:] != [runner]:
            fail('hf-worker.conf: runner.command is %r, not the installed %s'
                 % (settings.get('command'), runner))
        if settings.get('state_dir') != state_dir:
            fail('hf-worker.conf: state_dir is %s' % settings.get('state_dir'))
        if not settings.get('hf_cache', '').startswith(cache_dir + '/'):
            fail('hf-worker.conf: hf_cache is %s' % settings.get('hf_cache'))
        if not settings.get('token_file', '').startswith(os.path.join(p['sysconfdir'], 'hfleet')):
            fail('hf-worker.conf: token_file is %s' % settings.get('token_file'))

    registry = os.path.join(p['datadir'], 'hfleet', 'models.tsv')
    for c in (os.path.join(p['bashcompletiondir'], 'hfctl'),
              os.path.join(p['zshcompletiondir'], '_hfctl')):
        if registry not in open(at(c)).read():
            fail('%s does not read the installed registry %s' % (c, registry))


def sysusers_groups(libdir):
    groups = set()
    d = os.path.join(libdir, 'sysusers.d')
    for f in os.listdir(d):
        for line in open(os.path.join(d, f)):
            m = re.match(r'([ug])\s+(\S+)', line)
            if m:
                groups.add(m.group(2))
    return groups


def verify(dest, path, unit):
    if not shutil.which('systemd-analyze'):
        print('skip: systemd-analyze verify (no systemd-analyze)')
        return
    # The destdir is the root: it lends the host's own units (the targets
    # the units name) and kill (ExecReload=), without replacing ours.
    host_units = os.path.join(dest, 'usr/lib/systemd/system')
    os.makedirs(host_units, exist_ok=True)
    for name in os.listdir('/lib/systemd/system'):
        src, dst = os.path.join('/lib/systemd/system', name), os.path.join(host_units, name)
        if not os.path.lexists(dst) and os.path.isfile(src) and not os.path.islink(src):
            shutil.copy(src, dst)
    os.makedirs(os.path.join(dest, 'bin'), exist_ok=True)
    if not os.path.exists(os.path.join(dest, 'bin/kill')):
        shutil.copy('/bin/kill', os.path.join(dest, 'bin/kill'))
    r = subprocess.run(['systemd-analyze', 'verify', '--man=no', '--root=' + dest, path],
                       capture_output=True, text=True)
    # Outside a booted systemd, verify also reports the host's own units'
    # problems; only lines about this unit count.
    own = [line for line in (r.stdout + r.stderr).splitlines() if unit in line]
    if own:
        fail('systemd-analyze verify %s:\n  %s' % (unit, '\n  '.join(own)))


def security(path, unit):
    if not shutil.which('systemd-analyze'):
        print('skip: systemd-analyze security (no systemd-analyze)')
        return
    r = subprocess.run(['systemd-analyze', 'security', '--offline=yes', '--no-pager', path],
                       capture_output=True, text=True)
    m = re.search(r'Overall exposure level for \S+: (\d+\.\d+)', r.stdout + r.stderr)
    if not m:
        fail('systemd-analyze security %s gave no score: %s' % (unit, r.stderr.strip()))
        return
    score = float(m.group(1))
    print('systemd-analyze security %s: %.1f (at most %.1f)' % (unit, score,
                                                               SECURITY_LIMITS[unit]))
    if score > SECURITY_LIMITS[unit]:
        fail('%s scores %.1f in systemd-analyze security, above %.1f' % (
            unit, score, SECURITY_LIMITS[unit]))


if __name__ == '__main__':
    main()
