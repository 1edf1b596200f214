#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every query of deploy/grafana/ runs against the real schema, as the
read-only role, and returns what its panel shows.

The dashboards' JSON and the provisioning files are checked for what
Grafana needs (unique uids and panel ids, a grid position, the provisioned
datasource's uid).  Then a private PostgreSQL gets the real migrations
through the real coordinator, and real jobs (tests/integration/arith_runner.py
on a cpu device and a declared cuda device, one model failing on purpose)
fill it.  The runner measures no latency figures: the test writes them into
the benchmark results as the coordinator's role, the last run of one setting
twice as slow as the runs before it, so the regression views have a
regression to show.  A login role that is a member of hfleet_reader (made
here as an operator would, see deploy/grafana/README.md) then runs every
templating variable's query and every panel's query, after expanding
Grafana's macros and variables the way Grafana does for a PostgreSQL
datasource; each must succeed, return rows, and return every column its
panel's field config and transformations name (a time series: a "time"
column, sorted, and numeric values).

Grafana itself is not packaged in Debian 12, so no Grafana is started here:
the macros are expanded by this file (only those the dashboards use; any
other is a failure).
"""
import csv
import datetime
import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_pipeline import wait_job  # noqa: E402

GRAFANA = os.path.join(harness.SOURCE, 'deploy', 'grafana')
DASHBOARDS = sorted(glob.glob(os.path.join(GRAFANA, 'dashboards', '*.json')))
DATASOURCE_YAML = os.path.join(GRAFANA, 'provisioning', 'datasources', 'hfleet.yaml')
PROVIDER_YAML = os.path.join(GRAFANA, 'provisioning', 'dashboards', 'hfleet.yaml')
READER = 'hfleet_grafana_test'
VIEWS = ('compatibility_matrix', 'benchmark_latest', 'cross_backend', 'benchmark_history',
         'benchmark_regressions', 'fleet_utilisation', 'device_health')
RUNS = 6            # jobs; the rolling baseline is the median of the previous five
NUMERIC = ('smallint', 'integer', 'bigint', 'numeric', 'real', 'double precision')
TIME_TYPES = ('timestamp with time zone', 'timestamp without time zone') + NUMERIC


# ----------------------------------------------------------------------------
# Grafana's interpolation for a PostgreSQL datasource: template variables
# first (the frontend), then the macros (the backend).

def quote_literal(value):
    """How Grafana's SQL datasources quote a variable's value."""
    return "'" + str(value).replace("'", "''") + "'"


def expand_variables(sql, variables, defs):
    """$name, ${name} and ${name:sqlstring}; variables maps a name to its
    list of values (the selection "All"), defs to its definition."""
    def one(m):
        name = m.group(1) or m.group(3)
        fmt = m.group(2)
        if name.startswith('__'):
            return m.group(0)               # a macro: expand_macros' business
        if name not in variables:
            raise AssertionError('unknown template variable $%s in %r' % (name, sql))
        values = variables[name]
        if fmt is None:
            d = defs[name]
            if d.get('multi') or d.get('includeAll'):
                return ','.join(quote_literal(v) for v in values)
            return str(values[0])
        if fmt == 'sqlstring':
            return ','.join(quote_literal(v) for v in values)
        raise AssertionError('variable format :%s is not implemented here (%r)' % (fmt, sql))
    return re.sub(r'\$\{(\w+)(?::(\w+))?\}|\$(\w+)', one, sql)


def interval_seconds(text):
    m = re.fullmatch(r"'?(\d+)([smhdw])'?", text.strip())
    if not m:
        raise AssertionError('interval %r is not one Grafana takes here' % text)
    return int(m.group(1)) * {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[m.group(2)]


def rfc3339(t):
    """Go's time.RFC3339Nano, as Grafana writes the range: UTC, the
    fraction of a second without trailing zeros."""
    t = t.astimezone(datetime.timezone.utc)
    fraction = ('.%06d' % t.microsecond).rstrip('0').rstrip('.')
    return t.strftime('%Y-%m-%dT%H:%M:%S') + fraction + 'Z'


def expand_macros(sql, t_from, t_to):
    """The macros of Grafana's PostgreSQL datasource that the dashboards
    use, as it writes them; any other $__ macro is an error."""
    def one(m):
        name, args = m.group(1), [a.strip() for a in m.group(2).split(',')] if m.group(2).strip() else []
        if name == 'timeFilter' and len(args) == 1:
            return "%s BETWEEN '%s' AND '%s'" % (args[0], rfc3339(t_from), rfc3339(t_to))
        if name == 'timeFrom' and not args:
            return "'%s'" % rfc3339(t_from)
        if name == 'timeTo' and not args:
            return "'%s'" % rfc3339(t_to)
        if name in ('timeGroup', 'timeGroupAlias') and len(args) == 2:
            s = interval_seconds(args[1])
            group = 'floor(extract(epoch from %s)/%d)*%d' % (args[0], s, s)
            return group + (' AS "time"' if name == 'timeGroupAlias' else '')
        raise AssertionError('macro $__%s(%s) is not one the test implements' % (name, m.group(2)))
    out = re.sub(r'\$__(\w+)\(([^()]*)\)', one, sql)
    if '$' in out or '[[' in out:
        raise AssertionError('something was left unexpanded: %r' % out)
    return out


# ----------------------------------------------------------------------------
# The provisioning files (YAML, read by line: Debian's python3 has no YAML
# parser without an extra package, and these files are flat).

def yaml_value(path, key):
    with open(path) as f:
        values = [m.group(1).strip() for m in (re.match(r'\s*-?\s*%s:\s*(.*?)\s*$' % key, line)
                                               for line in f if not line.lstrip().startswith('#')) if m]
    if len(values) != 1:
        raise AssertionError('%s: expected one "%s:", found %r' % (path, key, values))
    return values[0]


class GrafanaFilesTest(unittest.TestCase):
    """The files alone, before any database."""

    def test_provisioning(self):
        self.assertEqual(yaml_value(DATASOURCE_YAML, 'type'), 'postgres')
        self.assertEqual(yaml_value(DATASOURCE_YAML, 'uid'), 'hfleet-pg')
        # No secret in the repository: the login comes from Grafana's
        # environment.
        self.assertRegex(yaml_value(DATASOURCE_YAML, 'password'), r'^\$\{[A-Z_]+\}$')
        self.assertRegex(yaml_value(DATASOURCE_YAML, 'user'), r'^\$\{[A-Z_]+\}$')
        self.assertEqual(yaml_value(PROVIDER_YAML, 'type'), 'file')
        self.assertTrue(yaml_value(PROVIDER_YAML, 'path').startswith('/'))

    def test_dashboards_structure(self):
        ds_uid = yaml_value(DATASOURCE_YAML, 'uid')
        ds_type = yaml_value(DATASOURCE_YAML, 'type')
        self.assertEqual(len(DASHBOARDS), 4, DASHBOARDS)
        uids, titles, sql = set(), set(), []
        for path in DASHBOARDS:
            name = os.path.basename(path)
            with open(path) as f:
                d = json.load(f)
            self.assertTrue(re.fullmatch(r'[A-Za-z0-9_-]{1,40}', d.get('uid', '')), name)
            self.assertNotIn(d['uid'], uids, name)
            self.assertNotIn(d['title'], titles, name)
            uids.add(d['uid'])
            titles.add(d['title'])
            self.assertGreaterEqual(d['schemaVersion'], 36, name)
            self.assertNotIn('id', d, '%s: a provisioned dashboard has no database id' % name)
            ids, cells = set(), set()
            for v in d['templating']['list']:
                self.assertEqual(v['datasource'], {'type': ds_type, 'uid': ds_uid}, (name, v['name']))
                self.assertTrue(v['multi'], (name, v['name']))
                sql.append(v['query'])
            self.assertTrue(d['panels'], name)
            for p in d['panels']:
                where = '%s panel %r' % (name, p.get('title'))
                self.assertIsInstance(p['id'], int, where)
                self.assertNotIn(p['id'], ids, where)
                ids.add(p['id'])
                self.assertEqual(p['datasource'], {'type': ds_type, 'uid': ds_uid}, where)
                g = p['gridPos']
                for k in ('x', 'y', 'w', 'h'):
                    self.assertIsInstance(g[k], int, where)
                self.assertTrue(g['x'] >= 0 and g['y'] >= 0 and g['w'] > 0 and g['h'] > 0
                                and g['x'] + g['w'] <= 24, where)
                mine = {(x, y) for x in range(g['x'], g['x'] + g['w']) for y in range(g['y'], g['y'] + g['h'])}
                self.assertFalse(mine & cells, '%s overlaps another panel' % where)
                cells |= mine
                self.assertEqual(len(p['targets']), 1, where)
                for t in p['targets']:
                    self.assertEqual(t['datasource'], {'type': ds_type, 'uid': ds_uid}, where)
                    self.assertTrue(t['rawQuery'] and t['editorMode'] == 'code' and t['rawSql'].strip(), where)
                    self.assertIn(t['format'], ('table', 'time_series'), where)
                    sql.append(t['rawSql'])
        text = '\n'.join(sql)
        for view in VIEWS:
            # fleet_utilisation is the last 30 days of hfleet_fleet_utilisation,
            # which the dashboard asks for its own time range.
            read = r'\bFROM (%s\b|hfleet_%s\(\$__timeFrom\(\), \$__timeTo\(\)\))' % (view, view)
            self.assertRegex(text, read, 'no panel reads %s' % view)

    def test_interpolation(self):
        """The expansion the database test relies on, on values Grafana
        must quote."""
        defs = {'m': {'multi': True, 'includeAll': True}}
        self.assertEqual(expand_variables("x IN ($m) AND y IN (${m:sqlstring})", {'m': ["a'b", 'c']}, defs),
                         "x IN ('a''b','c') AND y IN ('a''b','c')")
        t0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        t1 = t0 + datetime.timedelta(hours=1)
        self.assertEqual(expand_macros("$__timeGroupAlias(at, '1h') WHERE $__timeFilter(at) AND b < $__timeTo()",
                                       t0, t1),
                         'floor(extract(epoch from at)/3600)*3600 AS "time" WHERE at BETWEEN '
                         "'2026-01-02T03:04:05Z' AND '2026-01-02T04:04:05Z' AND b < '2026-01-02T04:04:05Z'")
        self.assertEqual(expand_macros('$__timeFrom()', t0 + datetime.timedelta(microseconds=250000), t1),
                         "'2026-01-02T03:04:05.25Z'")
        with self.assertRaises(AssertionError):
            expand_macros('SELECT $__unixEpochGroup(t, 1h)', t0, t1)
        with self.assertRaises(AssertionError):
            expand_variables('SELECT $nothing', {}, {})


# ----------------------------------------------------------------------------
# The queries against the real schema.

class GrafanaQueriesTest(unittest.TestCase):
    def reader_psql(self, c, sql, *args):
        p = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', c.pg.dir, '-p', str(c.pg.port),
                            '-U', READER, '-d', 'hfleet'] + list(args), input=sql, capture_output=True,
                           text=True, timeout=60,
                           env=dict(os.environ, PGOPTIONS='-c statement_timeout=10s'))
        return p

    def run_query(self, c, sql, where):
        """(columns {name: type} in order, rows) of sql run as the reader."""
        p = self.reader_psql(c, sql.rstrip().rstrip(';') + ' \\gdesc\n', '-A', '-t', '-F', '\x1f')
        self.assertEqual(p.returncode, 0, '%s: %s\n%s' % (where, p.stderr, sql))
        types = dict(line.split('\x1f') for line in p.stdout.splitlines() if line)
        p = self.reader_psql(c, sql.rstrip().rstrip(';') + ';\n', '--csv')
        self.assertEqual(p.returncode, 0, '%s: %s\n%s' % (where, p.stderr, sql))
        table = list(csv.reader(io.StringIO(p.stdout)))
        self.assertEqual(table[0], list(types), where)
        return types, table[1:]

    def fill(self, c):
        """Real jobs on a cpu and a declared cuda device, then the figures
        the arith runner cannot measure."""
        c.start_coordinator()
        wid = 'w1'
        runner = 'python3 %s --fail gpt2' % harness.ARITH_RUNNER
        c.workers[wid] = harness.Daemon(wid, [
            harness.WORKER, '--id', wid, '--coordinator-url', c.worker_url, '--state-dir',
            os.path.join(c.root, 'state-' + wid), '--slots', '2', '--runner', runner, '--log-level', 'info',
            '--set', 'devices.declare=cuda:0:name=Test GPU:memory=16GiB:uuid=GPU-test-0'],
            c.root, env=c.worker_env(wid)).start()
        c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 30, 'the worker to register')
        jobs = []
        for _ in range(RUNS):
            job = int(c.hfctl_json('submit', '--models', 'bert,gpt2', '--backends', 'cpu,cuda',
                                   '--kind', 'test,benchmark')['job_id'])
            wait_job(c, job, timeout=60)
            jobs.append(job)
        return jobs

    def write_figures(self, c, jobs):
        # Figures as the runner of issue 12 reports them: the cuda device
        # five times as fast as the cpu; bert's last run twice as slow.
        c.pg.psql("""
            UPDATE results r SET
                latency_p50_ms = f.p50, latency_mean_ms = f.p50 * 1.01, latency_stdev_ms = f.p50 * 0.01,
                latency_cv = 0.01, latency_p90_ms = f.p50 * 1.1, latency_p95_ms = f.p50 * 1.2,
                latency_p99_ms = f.p50 * 1.3, throughput_items_s = 1000.0 / f.p50,
                peak_memory_bytes = 123456789, noisy = false,
                energy_j_per_item = CASE WHEN t.backend = 'cuda' THEN 0.25 END,
                avg_power_w = CASE WHEN t.backend = 'cuda' THEN 250.0 END
            FROM tasks t,
                 LATERAL (SELECT (CASE WHEN t.backend = 'cuda' THEN 2.0 ELSE 10.0 END)
                                 * (CASE WHEN t.job_id = %d AND t.model_type = 'bert' THEN 2 ELSE 1 END) AS p50) f
            WHERE t.id = r.task_id AND t.kind = 'benchmark' AND r.status = 'passed'
            """ % jobs[-1])
        # The summary tables copied the figures when each task was decided:
        # rebuild them from the results as they are now.
        c.pg.psql('SELECT hfleet_rebuild_summaries()')

    def test_every_query_as_the_reader(self):
        with harness.cluster(heartbeat='200ms', lease='5s') as c:
            jobs = self.fill(c)
            self.write_figures(c, jobs)
            print('filled by jobs %s' % jobs)
            # The login an operator makes for Grafana (README).
            c.pg.psql('CREATE ROLE %s LOGIN IN ROLE hfleet_reader' % READER)
            p = self.reader_psql(c, 'SELECT count(*) FROM tokens;')
            self.assertNotEqual(p.returncode, 0, 'the reader reads tokens')
            self.assertIn('permission denied', p.stderr)
            p = self.reader_psql(c, "UPDATE jobs SET name = 'x';")
            self.assertNotEqual(p.returncode, 0, 'the reader writes')
            self.assertIn('permission denied', p.stderr)

            now = datetime.datetime.now(datetime.timezone.utc)
            t_from, t_to = now - datetime.timedelta(days=7), now + datetime.timedelta(hours=1)
            queries, shown = 0, {}
            for path in DASHBOARDS:
                with open(path) as f:
                    d = json.load(f)
                name = os.path.basename(path)
                values, defs = {}, {}
                for v in d['templating']['list']:
                    where = '%s variable $%s' % (name, v['name'])
                    sql = expand_macros(expand_variables(v['query'], values, defs), t_from, t_to)
                    types, rows = self.run_query(c, sql, where)
                    queries += 1
                    self.assertEqual(len(types), 1, where)
                    self.assertTrue(rows, '%s has no values' % where)
                    # What Grafana selects at first: "All", else the first value.
                    values[v['name']] = [r[0] for r in rows] if v['includeAll'] else [rows[0][0]]
                    defs[v['name']] = v
                    print('%s: %s' % (where, values[v['name']]))
                for p in d['panels']:
                    for t in p['targets']:
                        where = '%s panel %r' % (name, p['title'])
                        sql = expand_macros(expand_variables(t['rawSql'], values, defs), t_from, t_to)
                        types, rows = self.run_query(c, sql, where)
                        queries += 1
                        self.assertTrue(rows, '%s returned no rows:\n%s' % (where, sql))
                        self.check_panel(p, t, types, rows, where)
                        shown[(name, p['title'])] = rows
                        print('%s: %d rows, columns %s' % (where, len(rows), ', '.join(types)))
            print('%d queries ran as %s' % (queries, READER))
            # What the panels show is what the jobs did: gpt2 fails on both
            # backends, bert passes; the cuda device is five times as fast;
            # bert's last run is the regression, on both devices.
            self.assertEqual(sorted(shown[('hfleet-compatibility.json', 'Compatibility heat map')]),
                             [['bert', 'cpu fp32', 'passed'], ['bert', 'cuda fp32', 'passed'],
                              ['gpt2', 'cpu fp32', 'failed'], ['gpt2', 'cuda fp32', 'failed']])
            # (the panels show each benchmark's mode after its sequence length)
            speedup = {r[5]: r[9] for r in shown[('hfleet-latency.json', 'Across backends')]}
            self.assertEqual(speedup['cpu'], '1')
            self.assertAlmostEqual(float(speedup['cuda']), 5.0)
            regressed = shown[('hfleet-trends.json', 'Regressions of every model')]
            self.assertEqual(sorted((r[1], r[2], r[10]) for r in regressed),
                             [('bert', 'cpu', '1'), ('bert', 'cuda', '1')])
            per_status = {}   # bert's, the model the trends dashboard shows first
            for _, status, tasks in shown[('hfleet-trends.json', 'Test outcomes per day')]:
                per_status[status] = per_status.get(status, 0) + int(tasks)   # a day may end mid-test
            self.assertEqual(per_status, {'passed': 2 * RUNS})
            self.assertEqual(shown[('hfleet-fleet.json', 'Devices')], [['2', '0', '0']])

    def check_panel(self, p, t, types, rows, where):
        """The columns the panel names are the query's."""
        names = list(types)
        if t['format'] == 'time_series':
            self.assertIn('time', types, where)
            self.assertIn(types['time'], TIME_TYPES, where)
            values = [n for n in names if n not in ('time', 'metric')]
            self.assertTrue(values, where)
            for n in values:
                self.assertIn(types[n], NUMERIC, '%s: value column %s is %s' % (where, n, types[n]))
            if 'metric' in types:
                self.assertEqual(types['metric'], 'text', where)
            i = names.index('time')
            stamps = [r[i] for r in rows]
            key = (lambda s: float(s)) if types['time'] in NUMERIC else (lambda s: s)
            self.assertEqual(stamps, sorted(stamps, key=key), '%s: not sorted by time' % where)
            series = set(values) | ({r[names.index('metric')] for r in rows} if 'metric' in types else set())
            for o in p['fieldConfig']['overrides']:
                if o['matcher']['id'] == 'byName':
                    self.assertIn(o['matcher']['options'], series, where)
            self.assertFalse(p.get('transformations'), where)
            return
        for tr in p.get('transformations', []):
            o = tr['options']
            if tr['id'] == 'organize':
                for key in ('indexByName', 'renameByName', 'excludeByName'):
                    for n in o.get(key, {}):
                        self.assertIn(n, names, '%s: organize names %s' % (where, n))
                if o.get('indexByName'):
                    self.assertEqual(set(o['indexByName']), set(names), '%s: columns not placed' % where)
                names = [o.get('renameByName', {}).get(n) or n for n in names
                         if not o.get('excludeByName', {}).get(n)]
            elif tr['id'] == 'groupingToMatrix':
                for key in ('columnField', 'rowField', 'valueField'):
                    self.assertIn(o[key], names, '%s: %s %s' % (where, key, o[key]))
                col = names.index(o['columnField'])
                names = ['%s\\%s' % (o['rowField'], o['columnField'])] + sorted({r[col] for r in rows})
            else:
                self.fail('%s: transformation %s is not checked by this test' % (where, tr['id']))
        for o in p['fieldConfig']['overrides']:
            self.assertEqual(o['matcher']['id'], 'byName', where)
            # Grafana matches the name shown, after the transformations.
            self.assertIn(o['matcher']['options'], names, '%s: override of a field not shown' % where)
        for n in p.get('options', {}).get('footer', {}).get('fields', []) or []:
            self.assertIn(n, names, '%s: footer names %s' % (where, n))
        fields = p.get('options', {}).get('reduceOptions', {}).get('fields', '')
        if fields:
            m = re.fullmatch(r'/\^(\w+)\$/', fields)
            self.assertTrue(m, where)
            self.assertIn(m.group(1), names, where)
            self.assertIn(types[m.group(1)], NUMERIC, where)


if __name__ == '__main__':
    if shutil.which('grafana-server') is None and shutil.which('grafana') is None:
        print('Grafana is not installed (Debian 12 does not package it): the provisioning is checked '
              'as files and every query against PostgreSQL, no Grafana is started')
    unittest.main(verbosity=2)
