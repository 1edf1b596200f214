#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fills the generated parts of two man pages, so that they cannot drift
from the programs:

  mkman.py hfctl TEMPLATE HFCTL OUT
      hfctl(1): @COMMANDS@ becomes each command's "hfctl help COMMAND",
      for the commands "hfctl help" lists.
  mkman.py conf TEMPLATE OUT NAME=FILE...
      hfleet.conf(5): @SETTINGS@ becomes every setting of the example
      configurations (the files meson made from deploy/*.conf.in), with
      the comment above it.

The output is scdoc(5) source."""
import os
import re
import subprocess
import sys


def scdoc_escape(text):
    return re.sub(r'([\\*_])', r'\\\1', text)


def hfctl_commands(hfctl):
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LC_ALL': 'C'}
    out = subprocess.run([hfctl, 'help'], check=True, capture_output=True, text=True,
                         env=env).stdout
    names, inside = [], False
    for line in out.splitlines():
        if line == 'commands:':
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            names.append(line.split()[0])
    if not names:
        sys.exit('mkman: "hfctl help" listed no commands')
    parts = []
    for name in names:
        usage = subprocess.run([hfctl, 'help', name], check=True, capture_output=True,
                               text=True, env=env).stdout.rstrip('\n')
        if '```' in usage:
            sys.exit('mkman: the usage of %s holds ```' % name)
        parts.append('## hfctl %s\n\n```\n%s\n```\n' % (name, usage))
    return '\n'.join(parts)


def settings(files):
    """The settings of each file as scdoc: a subsection per [section], an
    entry per key with its value and the comment lines above it."""
    parts = []
    for name, path in files:
        parts.append('# SETTINGS OF %s\n' % name.upper())
        comment = []
        with open(path, encoding='utf-8') as f:
            for raw in f:
                line = raw.rstrip('\n')
                m = re.fullmatch(r'\[(\w+)\]', line)
                if m:
                    parts.append('## [%s]\n' % m.group(1))
                    comment = []
                    continue
                # "# key = value": a key the file leaves at its default.
                m = re.fullmatch(r'#? ?(\w+) = ?(.*)', line)
                if line.startswith('#') and not m:
                    comment.append(line[1:].strip())
                    continue
                if not m:
                    comment = []
                    continue
                value = m.group(2) or '(empty)'
                if line.startswith('#'):
                    value += ' (left out of the file: the default)'
                parts.append('*%s* = %s\n\t%s\n' % (
                    scdoc_escape(m.group(1)), scdoc_escape(value),
                    scdoc_escape(' '.join(comment)) or '-'))
                comment = []
    return '\n'.join(parts)


def main(argv):
    if len(argv) == 5 and argv[1] == 'hfctl':
        template, hfctl, out = argv[2:5]
        key, text = '@COMMANDS@', hfctl_commands(hfctl)
    elif len(argv) >= 5 and argv[1] == 'conf':
        template, out = argv[2:4]
        files = [a.split('=', 1) for a in argv[4:]]
        key, text = '@SETTINGS@', settings(files)
    else:
        sys.exit(__doc__)
    with open(template, encoding='utf-8') as f:
        page = f.read()
    if key not in page:
        sys.exit('mkman: %s has no %s' % (template, key))
    with open(out, 'w', encoding='utf-8') as f:
        f.write(page.replace(key, text))


if __name__ == '__main__':
    main(sys.argv)
