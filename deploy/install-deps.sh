#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what hfleet needs to build, test and run on Debian 12, from
# Debian's own packages only.  Installs nothing that is already there, so
# it is cheap to run every time.  Needs root (or sudo) when something is
# missing.
#
#   deploy/install-deps.sh              build and run (the quickstart)
#   deploy/install-deps.sh --test       also run the tests (tests/run-tests.sh):
#                                       clang for the fuzzers, chromium for the
#                                       report test, prometheus for promtool
#   deploy/install-deps.sh --packaging  also the tests' tools and those that
#                                       build and check the Debian packages
#                                       (debhelper, lintian: about 150
#                                       packages, so only when asked)
#   deploy/install-deps.sh --bench      also what bench/run.py's Celery
#                                       comparison needs: Celery 5, a Redis
#                                       server and client, SQLAlchemy and
#                                       psycopg2 (the result backend)
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  libuv1-dev libnng-dev protobuf-c-compiler libprotobuf-c-dev libpq-dev
  libjansson-dev libinih-dev libmbedtls-dev libsystemd-dev check libsubunit-dev
  postgresql-15 postgresql-client-15
  python3
  scdoc
)
test_packages=(
  clang-14 libclang-rt-14-dev
  chromium
  # promtool, for tests/integration/test_metrics.py.  The package also ships
  # the Prometheus server (19 MB download, 96 MB installed), whose service
  # Debian enables on a host run by systemd: stopped and disabled below
  # when this script is what installed it.
  prometheus
  # tests/deploy/test_deploy_files.py: YAML, and "docker-compose config"
  # of deploy/compose (the Python docker-compose 1.29, no daemon needed).
  python3-yaml docker-compose
)
bench_packages=(python3-celery redis-server python3-redis python3-sqlalchemy python3-psycopg2)
case "${1:-}" in
  --bench) packages+=("${bench_packages[@]}") ;;
  --packaging) packages+=("${test_packages[@]}" debhelper dpkg-dev lintian systemd) ;;
  --test) packages+=("${test_packages[@]}") ;;
  "") ;;
  *) echo "usage: $0 [--test|--packaging|--bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "hfleet: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "hfleet: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

# A test tool is not a service: the Prometheus server that came with
# promtool does not stay running or enabled on this host.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  echo "hfleet: installed prometheus for promtool; its server is stopped and disabled" >&2
fi
# bench/run.py starts a private redis-server of its own on a free port: the
# system's, which the package enables, does not stay running.
if printf '%s\n' "${missing[@]}" | grep -qx redis-server && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now redis-server.service >/dev/null 2>&1 || true
  echo "hfleet: installed redis-server for bench/run.py; the system's server is stopped and disabled" >&2
fi
