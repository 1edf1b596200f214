#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""PostgreSQL's execution cost per row of the coordinator's two hottest
statements (issue 15): the result store (coordinator/db-results.c,
run_result_store_merged) and the lease grant (coordinator/db-leases.c,
run_lease_grant_merged), at batches of 1, 6, 30 and 100 rows.

The statements' SQL is read from those C files, so the figure follows the
code.  A private cluster (tests/integration/harness.py) is migrated by the
coordinator, which is then stopped; the database is filled as a busy fleet
leaves it: 4 workers of one cpu device, one job of --tasks tasks (tests
and benchmarks alternating, every registry model, four precisions), the
first --history of them leased and decided by the real statements in
batches of 100 (results with the metrics and env the reference runner
sends).  Then, per batch size, rounds of: lease the next N queued tasks,
store their results (half tests, half benchmarks), each statement a
transaction of its own and run as the coordinator runs it (a prepared
statement, a generic plan) under EXPLAIN (ANALYZE, BUFFERS), whose
Execution Time includes every trigger and foreign-key check of the
statement.  Printed: the median and the minimum execution time per
statement and per row, and each trigger's and foreign key's share.

--variant SQL runs SQL once in a copy of the filled database and measures
it beside the schema as it is, alternating batch by batch (e.g. a trigger
dropped, a function replaced); --source DIR measures another checkout's
statements (built in --build), for a before/after.

    bench/pg-result-cost.py [--build build-x] [--rounds 20] [--explain]
    bench/pg-result-cost.py --build build-x --variant 'DROP TRIGGER attempts_summarise_update ON attempts'
    bench/pg-result-cost.py --build /tmp/base/build-x --source /tmp/base

Performance is never asserted: the exit status is 0 whenever it measured.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)

STORE_TYPES = ('bigint[], int[], text[], text[], jsonb[], jsonb[], text[], text[], text[], int[], int[], '
               'bigint[], bigint[], bool[], bool[]')
LEASE_TYPES = 'bigint[], int[], text[], text[]'

# What the reference runner sends (worker/runners/hfleet_bench.py,
# hfleet_runner_lib.py): a benchmark's metrics with 100 latency samples,
# the environment keys of ENV_KEYS.
BENCH_METRICS = json.dumps({
    'latency_ms': {'count': 100, 'mean': 12.5, 'stdev': 0.41, 'cv': 0.0328, 'min': 11.9, 'max': 14.2,
                   'p50': 12.4, 'p90': 13.0, 'p95': 13.3, 'p99': 14.0},
    'latency_samples_ms': [round(12 + (i % 17) * 0.1, 4) for i in range(100)],
    'throughput_items_s': 640.0, 'iterations': 100, 'warmup': 10, 'warmup_requested': 10,
    'warmup_stable': True, 'noise_threshold': 0.05, 'noisy': False})
TEST_METRICS = json.dumps({'max_abs_diff': 1.2e-06, 'outputs_checked': 3})
ENV = json.dumps({'python': '3.11.2', 'torch': '2.4.1+cpu', 'transformers': '4.44.2', 'device_name': 'cpu',
                  'platform': 'Linux-6.1.0-x86_64-with-glibc2.36', 'runner_version': 'hfleet-runner-1'})


def sql_macros(path):
    """The one-argument SQL macros of db-internal.h (#define NAME(x) with
    string literals around x), each as a function from the argument's text
    to the literal it expands to."""
    with open(path) as f:
        src = f.read()
    macros = {}
    for name, param, tokens in re.findall(r'^#define (DB_\w+)\((\w+)\) (.*)$', src, flags=re.M):
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"|(\w+)', tokens)

        def expand(arg, parts=parts, param=param):
            return '"' + ''.join(lit if not word else arg if word == param else '' for lit, word in parts) + '"'
        macros[name] = expand
    return macros


def c_statement(path, function, call):
    """The SQL text of the first `call` (db_pipe_send_generic(...)) inside
    `function` of the C file: its string literals joined, comments out."""
    with open(path) as f:
        src = f.read()
    start = src.index(function)
    start = src.index(call, start)
    end = re.compile(r'&p[,)]').search(src, start).start()
    body = re.sub(r'/\*.*?\*/', '', src[start + len(call):end], flags=re.S)
    for name, expand in sql_macros(os.path.join(os.path.dirname(path), 'db-internal.h')).items():
        body = re.sub(name + r'\("((?:[^"\\]|\\.)*)"\)', lambda m: expand(m.group(1)), body)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    return ''.join(parts).replace('\\"', '"').replace('\\\\', '\\')


def sql_quote(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--build', default=os.path.join(SOURCE, 'build'), help='the meson build directory')
    ap.add_argument('--source', default=SOURCE,
                    help="the source tree whose statements are measured (another commit's checkout, built in "
                    "--build, for a before/after); default this one")
    ap.add_argument('--tasks', type=int, default=30000, help='tasks of the job (default 30000)')
    ap.add_argument('--history', type=int, default=12000,
                    help='tasks decided before measuring (default 12000)')
    ap.add_argument('--rounds', type=int, default=20, help='measured statements per batch size (default 20)')
    ap.add_argument('--batches', default='1,6,30,100', help='batch sizes (default 1,6,30,100)')
    ap.add_argument('--explain', action='store_true',
                    help='also print one EXPLAIN (ANALYZE, BUFFERS, VERBOSE) of each statement at 30 rows')
    ap.add_argument('--passes', type=int, default=1, help='passes over the batch sizes (default 1)')
    ap.add_argument('--variant', action='append', default=[],
                    help='SQL run first in the measured transactions of a variant measured beside the '
                    'schema as it is, alternating (e.g. "DROP TRIGGER attempts_summarise_update ON attempts"); '
                    '";;" separates commands run outside one transaction; repeatable')
    ap.add_argument('--keep', action='store_true', help='keep the cluster directory')
    ap.add_argument('--one-connection', action='store_true',
                    help='every batch size on one connection, in the order of --batches, as the '
                         'coordinator runs them (plans of trigger functions are made once per '
                         'connection); without it each batch size starts a connection of its own')
    args = ap.parse_args()
    if args.one_connection and args.variant:
        ap.error('--one-connection measures the schema as it is: no --variant')
    batches = [int(b) for b in args.batches.split(',')]
    need = args.history + args.passes * (args.rounds + 2) * sum(batches) + (30 if args.explain else 0)
    if need > args.tasks:
        sys.exit('pg-result-cost: %d tasks are too few for --history %d and these rounds (%d needed)'
                 % (args.tasks, args.history, need))

    os.environ['HF_BUILD_ROOT'] = os.path.abspath(args.build)
    os.environ['HF_SOURCE_ROOT'] = SOURCE
    sys.path.insert(0, os.path.join(SOURCE, 'tests', 'integration'))
    import harness
    if not os.path.exists(harness.COORDINATOR):
        sys.exit('pg-result-cost: %s is missing: build first' % harness.COORDINATOR)

    store_sql = c_statement(os.path.join(args.source, 'coordinator', 'db-results.c'),
                            'int result_store_send(', 'db_pipe_send_generic(db, ops[0],')
    lease_sql = c_statement(os.path.join(args.source, 'coordinator', 'db-leases.c'),
                            'int lease_grant_send(', 'db_pipe_send_generic(db, ops[0],')

    cluster = harness.Cluster()
    try:
        cluster.start_coordinator()
        cluster.coordinator.stop()
        pg = cluster.pg
        print('pg-result-cost: PostgreSQL %s, %d tasks, %d decided first'
              % (pg.psql('SHOW server_version'), args.tasks, args.history), flush=True)
        pg.psql("""
            INSERT INTO workers (id, hostname, software_version, protocol_version)
                SELECT 'bench-w' || i, 'host' || i, 'bench', 1 FROM generate_series(1, 4) i;
            INSERT INTO devices (worker_id, backend, idx, name, memory_bytes, slots)
                SELECT 'bench-w' || i, 'cpu', 0, 'cpu', 68719476736, 8 FROM generate_series(1, 4) i;
            INSERT INTO jobs (name, submitter, spec, task_count) VALUES ('bench', 'bench', '{}', %d);
            INSERT INTO tasks (job_id, model_type, backend, kind, batch_size, seq_len, precision,
                               iterations, warmup, timeout_s)
                SELECT (SELECT max(id) FROM jobs), m.model_type, 'cpu',
                       CASE WHEN g %% 2 = 0 THEN 'test' ELSE 'benchmark' END,
                       1 + g / (2 * 4 * m.n), 128,
                       (ARRAY['fp32', 'fp16', 'bf16', 'int8'])[1 + (g / 2) %% 4], 100, 10, 600
                FROM generate_series(0, %d - 1) g
                JOIN (SELECT model_type, row_number() OVER (ORDER BY model_type) - 1 AS i,
                             count(*) OVER () AS n FROM models) m ON m.i = (g / 8) %% m.n;
            ANALYZE;""" % (args.tasks, args.tasks))

        head = ['SET synchronous_commit = off;', 'SET plan_cache_mode = force_generic_plan;',
                'PREPARE lease (%s) AS %s;' % (LEASE_TYPES, lease_sql),
                'PREPARE store (%s) AS %s;' % (STORE_TYPES, store_sql),
                '\\set bm %s' % sql_quote(BENCH_METRICS), '\\set tm %s' % sql_quote(TEST_METRICS),
                '\\set env %s' % sql_quote(ENV)]

        def round_sql(n, w, explain):
            """Lease the next n queued tasks to worker w, then store their
            results, each statement a transaction of its own as in the
            coordinator (a lease and its result are never in one: a
            foreign key's check on the attempt's update would run then);
            explain is '' or the EXPLAIN prefix."""
            return [
                "SELECT array_agg(id ORDER BY id) AS ids, array_agg(attempt + 1 ORDER BY id) AS att,"
                " array_agg('bench-w%d'::text ORDER BY id) AS wk, array_agg('{0}'::text ORDER BY id) AS devs"
                " FROM (SELECT id, attempt FROM tasks WHERE state = 'queued' ORDER BY id LIMIT %d) q \\gset"
                % (w, n),
                "%sEXECUTE lease(:'ids', :'att', :'wk', :'devs');" % explain,
                "SELECT array_agg(t.id ORDER BY t.id) AS ids, array_agg(t.attempt ORDER BY t.id) AS att,"
                " array_agg('passed'::text ORDER BY t.id) AS st, array_agg(''::text ORDER BY t.id) AS rs,"
                " array_agg(CASE WHEN t.kind = 'benchmark' THEN :'bm' ELSE :'tm' END ORDER BY t.id) AS mt,"
                " array_agg(:'env'::text ORDER BY t.id) AS en, array_agg(''::text ORDER BY t.id) AS wt,"
                " array_agg(''::text ORDER BY t.id) AS lg, array_agg(t.worker_id ORDER BY t.id) AS wk,"
                " array_agg(0 ORDER BY t.id) AS di, array_agg(0 ORDER BY t.id) AS ec,"
                " array_agg((extract(epoch FROM now()) * 1e6)::bigint - 20000 ORDER BY t.id) AS su,"
                " array_agg((extract(epoch FROM now()) * 1e6)::bigint ORDER BY t.id) AS fu,"
                " array_agg(false ORDER BY t.id) AS rt, array_agg(false ORDER BY t.id) AS fl"
                " FROM tasks t WHERE t.id = ANY (:'ids'::bigint[]) AND t.state = 'leased' \\gset",
                "%sEXECUTE store(:'ids', :'att', :'st', :'rs', :'mt', :'en', :'wt', :'lg', :'wk', :'di',"
                " :'ec', :'su', :'fu', :'rt', :'fl');" % explain,
            ]

        def run_psql(lines, db='hfleet'):
            path = os.path.join(cluster.root, 'cost-%s.sql' % db)
            with open(path, 'w') as f:
                f.write('\n'.join(lines) + '\n')
            out = subprocess.run(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', pg.dir,
                                  '-p', str(pg.port), '-U', 'postgres', '-d', db, '-f', path],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit('pg-result-cost: psql failed: %s' % out.stderr[-2000:])
            return out.stdout

        # The history, decided by the same statements, in batches of 100.
        script = list(head)
        for k in range(args.history // 100):
            script += round_sql(100, 1 + k % 4, '')
        script.append('VACUUM ANALYZE;')
        run_psql(script)
        # A copy of the database per variant, the variant's SQL run there
        # once; then, per pass, per batch size, per variant (alternating,
        # so each sees the same load): two warm-up rounds and --rounds
        # measured ones.
        variants = [('base', '')] + [('v%d' % (i + 1), v) for i, v in enumerate(args.variant)]
        for name, setup in variants[1:]:
            pg.psql('CREATE DATABASE hfleet_%s TEMPLATE hfleet' % name, db='postgres')
            # ';;' separates commands run each on its own (VACUUM FULL, which
            # no transaction may hold, after an ALTER TABLE, say).
            for command in setup.split(';;'):
                pg.psql(command, db='hfleet_%s' % name)
        explain = 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) '
        script = []
        if args.one_connection:
            script += ['\\c hfleet'] + head
        for _ in range(args.passes):
            for n in batches:
                for name, setup in variants:
                    if not args.one_connection:
                        script += ['\\c hfleet%s' % ('' if name == 'base' else '_' + name)] + head
                    for k in range(args.rounds + 2):
                        script.append('\\echo @@ %s %d %d' % (name, n, k))
                        script += round_sql(n, 1 + k % 4, explain)
        if args.explain:
            script += ['\\c hfleet'] + head + ['\\echo @@ verbose']
            script += round_sql(30, 1, 'EXPLAIN (ANALYZE, BUFFERS, VERBOSE) ')
        out = run_psql(script)

        # Per variant and batch size: each statement's execution time and
        # its triggers'.
        figures = {}
        verbose = None
        for block in out.split('@@ ')[1:]:
            head, _, body = block.partition('\n')
            if head.startswith('verbose'):
                verbose = body
                continue
            v, n, k = head.split()
            n, k = int(n), int(k)
            docs = [json.loads(d) for d in re.findall(r'^\[.*?^\]$', body, flags=re.M | re.S)]
            if k < 2 or len(docs) != 2:
                continue  # the first two rounds warm the plans up
            for name, doc in zip(('lease', 'store'), docs):
                ex = doc[0]
                trig = {}
                for t in ex.get('Triggers', []):
                    tn = re.sub(r'RI_ConstraintTrigger_\w+', 'fk', t['Trigger Name'])
                    tn = t.get('Constraint Name', tn) if tn == 'fk' else tn
                    trig[tn] = trig.get(tn, 0) + t['Time']
                figures.setdefault((v, name, n), []).append((ex['Execution Time'], trig))
        for name, setup in variants:
            if setup:
                print('%s: %s' % (name, setup))
        print('%-5s %-6s %5s %9s %9s %9s   %s' % ('var', 'stmt', 'rows', 'us/stmt', 'us/row', 'min/row',
                                                 'triggers and FK checks, us/row (median)'))
        for name in ('store', 'lease'):
            for n in batches:
                for v, _ in variants:
                    runs = figures.get((v, name, n), [])
                    if not runs:
                        continue
                    per = statistics.median(r[0] for r in runs) * 1000
                    low = min(r[0] for r in runs) * 1000
                    names = sorted({t for r in runs for t in r[1]})
                    trig = ', '.join('%s %.1f' % (t, statistics.median(r[1].get(t, 0) for r in runs) * 1000 / n)
                                     for t in names)
                    print('%-5s %-6s %5d %9.0f %9.1f %9.1f   %s' % (v, name, n, per, per / n, low / n, trig or '-'))
        if verbose:
            print('\n---- EXPLAIN (ANALYZE, BUFFERS, VERBOSE), 30 rows ----')
            print(verbose)
        print('pg-result-cost: consistency: %s tasks decided, %s results, %s task_history rows'
              % (pg.psql("SELECT count(*) FROM tasks WHERE finished_at IS NOT NULL"),
                 pg.psql('SELECT count(*) FROM results'), pg.psql('SELECT count(*) FROM task_history')))
    finally:
        cluster.close(keep=args.keep)
        if args.keep:
            print('pg-result-cost: kept %s' % cluster.root)


if __name__ == '__main__':
    main()
