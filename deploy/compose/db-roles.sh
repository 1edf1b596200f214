#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Run by the compose stack's one-shot service "db-roles" (the PostgreSQL
# image) once the coordinator's migrations have run: makes (or sets the
# password of) the login role "grafana", a member of hfleet_reader, as
# deploy/grafana/README.md says.  Passwords come from the secrets
# postgres-password and grafana-db-password.
set -eu

umask 077
printf '*:*:*:hfleet:%s\n' "$(cat /run/secrets/postgres-password)" >"$PGPASSFILE"
pw=$(cat /run/secrets/grafana-db-password)

if [ "$(psql -X -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'hfleet_reader'")" != 1 ]; then
	echo "db-roles: the role hfleet_reader does not exist (a coordinator without migration 008?): Grafana gets no role" >&2
	exit 0
fi
psql -X -v ON_ERROR_STOP=1 -v pw="$pw" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana') AS missing \gset
\if :missing
CREATE ROLE grafana LOGIN IN ROLE hfleet_reader;
\endif
ALTER ROLE grafana PASSWORD :'pw';
SQL
echo "db-roles: the role grafana reads the results (member of hfleet_reader)"
