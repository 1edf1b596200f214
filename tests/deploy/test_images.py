#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds the coordinator image and the Debian-only CPU worker image with
Debian's podman and runs them against a private PostgreSQL: the test of
deploy/container/ that needs a container engine (minutes, so not in a meson
suite: run it by hand, as root, see deploy/container/README.md).

    tests/deploy/test_images.py BUILD_DIR     (BUILD_DIR holds hfctl)

What it does and checks:
- a Debian 12 base image made here with mmdebstrap (minbase) from Debian's
  mirror, since no registry can be reached; the Containerfiles take it as
  their DEBIAN build argument (docker.io/library/debian:12-slim otherwise);
- podman build of Containerfile.coordinator and Containerfile.worker-cpu;
  the images run as uid 10001 and hold no credential (Env, history);
- tokens made with the image's hf-coordinator --create-token, the conninfo
  from a file (HFLEET_DATABASE_URL_FILE, hfleet-entrypoint);
- the coordinator container with TLS on its ports (deploy/fleet-certs.sh),
  its HEALTHCHECK healthy (podman healthcheck run), /metrics through the
  published port, hfctl whoami over TLS through the published control port;
- the worker container (in the coordinator's network namespace, dialing
  localhost) with its token from a 0644 file through
  HFLEET_WORKER_TOKEN_SECRET: it registers with a CPU device whose health
  check (torch) passes, its HEALTHCHECK is healthy, a job of one model runs
  and ends "skipped" because Debian 12 has no transformers;
- podman stop: the worker drains and both exit 0.

The engine's settings for this machine are in a private containers.conf:
runc where cgroups are mounted in hybrid mode (crun refuses them), and
ulimits no higher than this process's (no CAP_SYS_RESOURCE here)."""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
import harness  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BASE = 'localhost/hfleet-debian:12-minbase'
TAG = 'localhost/hfleet-%s:test'


def run(argv, **kw):
    print('+', ' '.join(argv), flush=True)
    return subprocess.run(argv, check=True, **kw)


def out(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def engine_conf(tmp):
    path = os.path.join(tmp, 'containers.conf')
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    lines = ['[containers]', 'default_ulimits = ["nofile=%d:%d", "nproc=4096:4096"]' % (nofile, nofile)]
    if os.path.isdir('/sys/fs/cgroup/unified'):
        lines += ['[engine]', 'runtime = "runc"']
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.environ['CONTAINERS_CONF'] = path


def base_image():
    if subprocess.run(['podman', 'image', 'exists', BASE]).returncode == 0:
        print('base image %s exists' % BASE)
        return
    mm = subprocess.Popen(['mmdebstrap', '--variant=minbase', '--mode=root', '--format=tar', 'bookworm', '-',
                           'http://deb.debian.org/debian'], stdout=subprocess.PIPE)
    run(['podman', 'import', '-', BASE], stdin=mm.stdout, stdout=subprocess.DEVNULL)
    if mm.wait() != 0:
        raise SystemExit('mmdebstrap failed')


def build(name):
    t = time.time()
    run(['podman', 'build', '--format', 'docker', '--build-arg', 'DEBIAN=' + BASE, '-f',
         os.path.join(ROOT, 'deploy', 'container', 'Containerfile.' + name), '-t', TAG % name, ROOT],
        stdout=subprocess.DEVNULL)
    print('built %s in %.0f s' % (TAG % name, time.time() - t))


def wait(what, pred, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = pred()
            if v:
                return v
        except Exception:  # noqa: BLE001 (not ready yet: try again)
            pass
        time.sleep(1)
    raise AssertionError('timed out waiting for ' + what)


def main():
    if os.geteuid() != 0:
        raise SystemExit('test_images.py: needs root (rootful podman)')
    for tool in ('podman', 'mmdebstrap', 'openssl'):
        if not shutil.which(tool):
            raise SystemExit('test_images.py: %s not found (apt-get install podman mmdebstrap runc openssl)' % tool)
    build_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'build'))
    hfctl_bin = os.path.join(build_dir, 'coordinator', 'hfctl', 'hfctl')
    tmp = tempfile.mkdtemp(prefix='hfleet-images-')
    os.chmod(tmp, 0o755)
    engine_conf(tmp)
    base_image()
    build('coordinator')
    build('worker-cpu')
    for name in ('coordinator', 'worker-cpu'):
        img = json.loads(out(['podman', 'image', 'inspect', TAG % name]))[0]
        cfg = img['Config']
        assert cfg['User'] == '10001:10001', cfg['User']
        assert (img.get('Healthcheck') or {}).get('Test', [None])[0] == 'CMD', 'no HEALTHCHECK in ' + name
        hist = out(['podman', 'history', '--no-trunc', '--format', '{{.CreatedBy}}', TAG % name])
        for word in ('password', 'hft_', 'PRIVATE KEY'):
            assert word not in ' '.join(cfg.get('Env') or []) + hist, '%s in %s' % (word, name)

    pg = harness.PrivatePostgres(tmp)
    coord = 'hfleet-test-coord-%d' % os.getpid()
    worker = 'hfleet-test-worker-%d' % os.getpid()
    try:
        secrets = os.path.join(tmp, 'secrets')
        os.makedirs(secrets, mode=0o700)
        tls = os.path.join(secrets, 'tls')
        run([os.path.join(ROOT, 'deploy', 'fleet-certs.sh'), 'ca', tls], stdout=subprocess.DEVNULL)
        run([os.path.join(ROOT, 'deploy', 'fleet-certs.sh'), 'coordinator', tls, 'localhost,127.0.0.1'],
            stdout=subprocess.DEVNULL)
        # Read through bind mounts by uid 10001: world-readable in a 0700
        # directory, as deploy/compose/make-secrets.sh makes them.
        os.chmod(os.path.join(tls, 'coordinator.key'), 0o644)
        dburl = os.path.join(secrets, 'database-url')
        with open(dburl, 'w') as f:
            f.write(pg.conninfo + '\n')
        os.chmod(dburl, 0o644)
        db_mounts = ['-v', '%s:%s' % (pg.dir, pg.dir), '-v', dburl + ':/run/secrets/database-url:ro',
                     '-e', 'HFLEET_DATABASE_URL_FILE=/run/secrets/database-url']
        tls_mounts = ['-v', '%s/ca.crt:/etc/hfleet/tls/ca.crt:ro' % tls]

        def token(name, role):
            path = os.path.join(secrets, name + '.token')
            with open(path, 'w') as f:
                subprocess.run(['podman', 'run', '--rm', '--network', 'none'] + db_mounts +
                               [TAG % 'coordinator', 'hf-coordinator', '-c', '/etc/hfleet/hf-coordinator.conf',
                                '--create-token', name, '--role', role], stdout=f, check=True)
            return path
        admin = token('ops', 'admin')
        os.chmod(admin, 0o600)
        wtoken = token('ctr-worker-1', 'worker')
        os.chmod(wtoken, 0o644)   # as a mounted secret may be: the entrypoint copies it

        p_control, p_http, p_wmetrics = harness.free_port(), harness.free_port(), harness.free_port()
        run(['podman', 'run', '-d', '--name', coord,
             '-p', '127.0.0.1:%d:7101' % p_control, '-p', '127.0.0.1:%d:7102' % p_http,
             '-p', '127.0.0.1:%d:7103' % p_wmetrics] + db_mounts + tls_mounts +
            ['-v', '%s/coordinator.crt:/etc/hfleet/tls/coordinator.crt:ro' % tls,
             '-v', '%s/coordinator.key:/etc/hfleet/tls/coordinator.key:ro' % tls, TAG % 'coordinator'],
            stdout=subprocess.DEVNULL)
        wait('the coordinator\'s HEALTHCHECK',
             lambda: subprocess.run(['podman', 'healthcheck', 'run', coord]).returncode == 0, 60)
        metrics = urllib.request.urlopen('http://127.0.0.1:%d/metrics' % p_http, timeout=5).read().decode()
        assert 'hfleet_database_up 1' in metrics, metrics[:2000]
        assert out(['podman', 'exec', coord, 'id', '-u']).strip() == '10001'
        hfctl = [hfctl_bin, '--coordinator', 'tls+tcp://127.0.0.1:%d' % p_control, '--ca-file',
                 os.path.join(tls, 'ca.crt'), '--token-file', admin]
        print(out(hfctl + ['whoami']).strip())

        run(['podman', 'run', '-d', '--name', worker, '--network', 'container:' + coord] + tls_mounts +
            ['-v', wtoken + ':/run/secrets/worker.token:ro',
             '-e', 'HFLEET_WORKER_TOKEN_SECRET=/run/secrets/worker.token',
             '-e', 'HFLEET_WORKER_ID=ctr-worker-1', '-e', 'HFLEET_WORKER_URL=tls+tcp://localhost:7100',
             TAG % 'worker-cpu'], stdout=subprocess.DEVNULL)

        def cpu_ready():
            devs = json.loads(out(hfctl + ['--json', 'devices']))
            return [d for d in devs['devices'] if d['worker_id'] == 'ctr-worker-1' and d['backend'] == 'cpu'
                    and d['connected'] and d['state'] == 'in-service']
        devs = wait('worker ctr-worker-1 with a CPU device in service', cpu_ready, 180)
        print(json.dumps(devs)[:600])
        # The health check at registration: torch's matrix product on the CPU.
        checks = wait('the CPU device\'s health check', lambda: pg.rows(
            "SELECT ok, detail FROM device_health_checks WHERE worker_id = 'ctr-worker-1' AND backend = 'cpu'"), 120)
        print('health check:', checks)
        assert checks[0][0] == 't' and 'fp32 matmul' in checks[0][1], checks  # torch's, not the pure-Python check
        wait('the worker\'s HEALTHCHECK',
             lambda: subprocess.run(['podman', 'healthcheck', 'run', worker]).returncode == 0, 60)
        wm = urllib.request.urlopen('http://127.0.0.1:%d/metrics' % p_wmetrics, timeout=5).read().decode()
        assert 'hfleet_worker' in wm, wm[:1000]

        sub = json.loads(out(hfctl + ['--json', 'submit', '--models', 'albert', '--backends', 'cpu',
                                      '--kind', 'test', '--name', 'container-test']))
        job = str(sub['job_id'])
        subprocess.run(hfctl + ['--timeout', '10s', 'watch', job], timeout=300)
        res = out(hfctl + ['results', job])
        print(res)
        assert 'skipped' in res and 'transformers' in res, res

        for name in (worker, coord):
            run(['podman', 'stop', '-t', '60', name], stdout=subprocess.DEVNULL)
            code = out(['podman', 'inspect', '--format', '{{.State.ExitCode}}', name]).strip()
            assert code == '0', '%s exited %s' % (name, code)
        print('test_images.py: OK')
    except BaseException:
        for name in (coord, worker):
            subprocess.run(['podman', 'logs', '--tail', '60', name])
        raise
    finally:
        subprocess.run(['podman', 'rm', '-f', worker, coord], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
