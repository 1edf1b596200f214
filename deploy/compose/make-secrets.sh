#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Makes the secrets of the compose stack (compose.yaml) in
# deploy/compose/secrets/, which git ignores:
#
#   postgres-password, grafana-db-password, grafana-admin-password
#                      random (openssl rand)
#   database-url       the coordinator's conninfo, with the password
#   grafana.env        HFLEET_GRAFANA_DB_PASSWORD for Grafana's datasource
#   .env               nothing secret: the published ports, for reference
#   tls/               the fleet CA and the coordinator's certificate for the
#                      names "coordinator" (workers of the stack), localhost
#                      and 127.0.0.1 (hfctl through the published port), made
#                      by deploy/fleet-certs.sh
#
#   deploy/compose/make-secrets.sh [--force]
#
# A file that exists is kept (--force makes everything again: the database
# password then no longer matches the volume's cluster; remove the volume
# pgdata too).  The directory is mode 0700: the host's other users cannot
# read it.  The files in it are 0644, because the containers read them
# through bind mounts as their own users (PostgreSQL's, hfleet's uid
# 10001), whatever the engine's user mapping.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=$here/secrets
force=0
[ "${1:-}" = "--force" ] && force=1
command -v openssl >/dev/null 2>&1 || { echo "make-secrets.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$dir/tls"
chmod 0700 "$dir"

# put NAME CONTENT: a secret file, kept when it exists.
put() {
	if [ -s "$dir/$1" ] && [ "$force" = 0 ]; then
		echo "make-secrets.sh: secrets/$1 exists; kept"
		return 0
	fi
	printf '%s\n' "$2" >"$dir/$1.new"
	chmod 0644 "$dir/$1.new"
	mv "$dir/$1.new" "$dir/$1"
	echo "make-secrets.sh: made secrets/$1"
}

put postgres-password "$(openssl rand -hex 24)"
put grafana-db-password "$(openssl rand -hex 24)"
put grafana-admin-password "$(openssl rand -hex 16)"
put database-url "host=postgres port=5432 dbname=hfleet user=hfleet password=$(cat "$dir/postgres-password")"
put grafana.env "HFLEET_GRAFANA_DB_PASSWORD=$(cat "$dir/grafana-db-password")"
put .env "COMPOSE_PROJECT_NAME=hfleet
HFLEET_CONTROL_PORT=7101
HFLEET_METRICS_PORT=7102
PROMETHEUS_PORT=9090
GRAFANA_PORT=3000"

f=
[ "$force" = 1 ] && f=--force
"$here/../fleet-certs.sh" $f ca "$dir/tls"
"$here/../fleet-certs.sh" $f coordinator "$dir/tls" coordinator,localhost,127.0.0.1
chmod 0644 "$dir/tls/coordinator.key"
echo "make-secrets.sh: done; start the stack with: docker compose -f $here/compose.yaml --env-file $dir/.env up -d --build"
