#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Run by the compose stack's one-shot service "tokens" (the coordinator
# image, as hfleet, with HFLEET_DATABASE_URL from the database-url secret)
# before the coordinator starts: makes the admin token "ops" in
# /var/lib/hfleet/admin-token/admin.token and a worker token for each id
# of $HFLEET_STACK_WORKERS in /var/lib/hfleet/worker-token/ID.token, all
# mode 0600, with "hf-coordinator --create-token" (which creates or
# migrates the database first).  A token file that exists is kept, so the
# stack can be started again and again.
set -eu

conf=/etc/hfleet/hf-coordinator.conf

make_token() { # FILE NAME ROLE
	if [ -s "$1" ]; then
		echo "make-tokens: $1 exists; kept"
		return 0
	fi
	(umask 077 && hf-coordinator -c "$conf" --create-token "$2" --role "$3" >"$1.new") || {
		rm -f "$1.new"
		echo "make-tokens: could not make the token \"$2\" ($3)" >&2
		exit 1
	}
	mv "$1.new" "$1"
}

make_token /var/lib/hfleet/admin-token/admin.token ops admin
for id in ${HFLEET_STACK_WORKERS:-}; do
	make_token "/var/lib/hfleet/worker-token/$id.token" "$id" worker
done
