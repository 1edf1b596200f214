#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hfctl's bash and zsh completion (deploy/completion/) offer exactly hfctl's
commands and each command's options, as "hfctl help" and "hfctl help
COMMAND" list them: a command or option added to hfctl without its
completion (or the other way round) fails here.

The bash completion is run for real: the script is sourced into bash and
its function called with COMP_WORDS as bash-completion would.  The zsh file
is read (zsh is not needed): its command list and the option names of each
command's branch.

  test_completion.py HFCTL BASH_COMPLETION ZSH_COMPLETION"""
import re
import shutil
import subprocess
import sys

failures = []


def check(what, got, want):
    if set(got) != set(want):
        failures.append('%s: missing %s, not in hfctl %s' % (
            what, sorted(set(want) - set(got)), sorted(set(got) - set(want))))


def run(argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          env={'PATH': '/usr/bin:/bin', 'LC_ALL': 'C'}).stdout


def help_options(text):
    """--options of a usage text: those on its usage lines and at the start
    of its indented option lines ("  --cert-file PEM, --key-file PEM")."""
    opts = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith('usage:') or (i < 4 and re.match(r'\s+hfctl ', line)):
            opts.update(re.findall(r'--[a-z][a-z-]*', line))
        m = re.match(r'\s{2,}(--\S.*)', line)
        if m:
            head = re.split(r'\s{2,}', m.group(1))[0]
            opts.update(re.findall(r'--[a-z][a-z-]*', head))
    return opts | {'--help'}


def hfctl_model(hfctl):
    """{command: options}, {"token SUB": options} and the global options."""
    top = run([hfctl, 'help'])
    names = re.search(r'\ncommands:\n(.*?)\n\n', top, re.S).group(1)
    commands = [line.split()[0] for line in names.splitlines()]
    global_opts = help_options(top.split('\noptions:\n', 1)[1]) | {'--version'}
    model = {}
    for name in commands:
        text = run([hfctl, 'help', name])
        model[name] = help_options(text)
        # "hfctl token create NAME --role ROLE [--json]": one usage line per
        # subcommand; the options below it apply to every one.
        subs = re.findall(r'hfctl %s ([a-z]+)\b(.*)' % name, text)
        if len(subs) > 1 and all(s[0] not in ('JOB', 'TASK') for s in subs):
            below = help_options(text.split('\n\n', 1)[1])
            for sub, rest in subs:
                model['%s %s' % (name, sub)] = set(re.findall(r'--[a-z][a-z-]*', rest)) | below
            model[name] = {'--help'}
    return commands, global_opts, model


def bash_complete(script, words):
    """COMPREPLY of the completion for the words (the last is being typed)."""
    line = ' '.join(words)
    prog = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\nCOMP_LINE=%s\nCOMP_POINT=%d\n'
            '_hfctl\nprintf "%%s\\n" "${COMPREPLY[@]}"\n') % (
        shlex_quote(script), ' '.join(shlex_quote(w) for w in words), len(words) - 1,
        shlex_quote(line), len(line))
    out = subprocess.run(['bash', '--norc', '--noprofile', '-c', prog], check=True,
                         capture_output=True, text=True).stdout
    return [w for w in out.split('\n') if w]


def shlex_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def check_bash(script, commands, global_opts, model):
    check('bash: hfctl <TAB>', bash_complete(script, ['hfctl', '']), commands + ['help'])
    check('bash: hfctl --<TAB>', bash_complete(script, ['hfctl', '--']), global_opts)
    check('bash: hfctl help <TAB>', bash_complete(script, ['hfctl', 'help', '']),
          commands + ['help'])
    for name, opts in model.items():
        words = ['hfctl', '--request-timeout', '5s'] + name.split() + ['--']
        check('bash: hfctl %s --<TAB>' % name, bash_complete(script, words), opts)
    subs = [n.split()[1] for n in model if n.startswith('token ')]
    check('bash: hfctl token <TAB>', bash_complete(script, ['hfctl', 'token', '']), subs)
    # A value: the last item of a list.
    got = bash_complete(script, ['hfctl', 'submit', '--backends', 'cpu,cu'])
    if got != ['cpu,cuda']:
        failures.append('bash: --backends cpu,cu<TAB> gave %s, not cpu,cuda' % got)


def zsh_branches(text):
    """{branch label: option names} of the case statements of _hfctl_command."""
    body = text.split('_hfctl_command() {', 1)[1].split('\n}\n', 1)[0]
    branches, label = {}, None
    for line in body.splitlines():
        m = re.match(r'\t+([a-z][a-z |]*)\)', line)
        if m:
            label = m.group(1)
            for name in label.split(' | '):
                branches.setdefault(name.strip(), set())
        if label:
            opts = set(re.findall(r"'(?:\([^)]*\))?\*?(--[a-z][a-z-]*)\[", line))
            if '$_hfctl_json' in line:
                opts |= {'--json', '--help'}
            for name in label.split(' | '):
                branches[name.strip()] |= opts
    return branches


def check_zsh(path, commands, global_opts, model):
    text = open(path, encoding='utf-8').read()
    listed = re.findall(r"^\t\t'([a-z]+):", text, re.M)
    check('zsh: commands', listed, commands + ['help'])
    top = text.split('_hfctl() {', 1)[1]
    check('zsh: global options', re.findall(r"'(?:\([^)]*\))?(--[a-z][a-z-]*)\[", top),
          global_opts)
    branches = zsh_branches(text)
    for name, opts in model.items():
        key = name.split()[-1]
        if name == 'token':
            continue
        check('zsh: hfctl %s' % name, branches.get(key, set()), opts)
    if shutil.which('zsh'):
        r = subprocess.run(['zsh', '-n', path], capture_output=True, text=True)
        if r.returncode != 0:
            failures.append('zsh -n %s: %s' % (path, r.stderr.strip()))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    hfctl, bash_script, zsh_script = sys.argv[1:]
    commands, global_opts, model = hfctl_model(hfctl)
    if len(commands) < 10 or '--models' not in model.get('submit', ()):
        sys.exit('could not read hfctl help (%d commands)' % len(commands))
    r = subprocess.run(['bash', '-n', bash_script], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append('bash -n: %s' % r.stderr.strip())
    check_bash(bash_script, commands, global_opts, model)
    check_zsh(zsh_script, commands, global_opts, model)
    for f in failures:
        print('FAIL', f)
    print('%d commands, %d option lists checked; %d failures' % (
        len(commands), len(model), len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
