#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Makes the TLS credentials of an hfleet fleet with Debian's openssl: a
# fleet CA, the coordinator's server certificate, and workers' client
# certificates.  See "Putting TLS on a fleet" in docs/operations.md.
#
#   fleet-certs.sh [--force] ca DIR
#       DIR/ca.key (0600) and DIR/ca.crt: the fleet's CA.  Give ca.crt to
#       every worker (tls.ca_file) and hfctl user (--ca-file); keep ca.key
#       off the fleet.
#   fleet-certs.sh [--force] coordinator DIR HOST[,HOST...]
#       DIR/coordinator.key (0600) and DIR/coordinator.crt, signed by the CA
#       in DIR, valid for each HOST (a DNS name or an IP address) that
#       workers and hfctl dial (tls+tcp://HOST:PORT).
#   fleet-certs.sh [--force] worker DIR WORKER_ID
#       DIR/worker-WORKER_ID.key (0600) and .crt: a client certificate whose
#       common name is the worker id, for a coordinator with
#       tls.client_auth = required.
#
# A file that exists is kept (the command says so and succeeds) unless
# --force is given: then it is made again (rotation; the old one is
# replaced).  Keys are P-256 ECDSA; certificates last $FLEET_CERT_DAYS days
# (default 825), the CA $FLEET_CA_DAYS (default 3650).
set -eu

prog=fleet-certs.sh
force=0
cert_days=${FLEET_CERT_DAYS:-825}
ca_days=${FLEET_CA_DAYS:-3650}

die() {
	echo "$prog: $*" >&2
	exit 1
}

usage() {
	sed -n '4,25p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

command -v openssl >/dev/null 2>&1 || die "openssl not found (apt-get install openssl)"

# new_key PATH: a P-256 key, mode 0600 from the start.
new_key() {
	(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) ||
		die "could not make the key $1"
	chmod 600 "$1"
}

# exists NAME FILE...: true (and says so) when every file is there and
# --force was not given.
exists() {
	what=$1
	shift
	[ "$force" = 1 ] && return 1
	for f in "$@"; do
		[ -e "$f" ] || return 1
	done
	echo "$prog: $what exists ($*); kept (--force makes it again)"
	return 0
}

need_ca() {
	[ -f "$1/ca.key" ] && [ -f "$1/ca.crt" ] || die "no CA in $1: run \"$prog ca $1\" first"
}

# sign DIR NAME SUBJECT EXTENSIONS: DIR/NAME.key and DIR/NAME.crt.
sign() {
	dir=$1 name=$2 subj=$3 ext=$4
	tmp=$(mktemp -d) || die "could not make a temporary directory"
	trap 'rm -rf "$tmp"' EXIT
	new_key "$tmp/key"
	openssl req -new -key "$tmp/key" -subj "$subj" -out "$tmp/csr" 2>"$tmp/err" ||
		die "could not make the request for $name: $(cat "$tmp/err")"
	printf '%s\n' "$ext" >"$tmp/ext"
	openssl x509 -req -in "$tmp/csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
		-days "$cert_days" -sha256 -extfile "$tmp/ext" -out "$tmp/crt" 2>"$tmp/err" ||
		die "could not sign $name: $(cat "$tmp/err")"
	mv "$tmp/key" "$dir/$name.key"
	mv "$tmp/crt" "$dir/$name.crt"
	rm -rf "$tmp"
	trap - EXIT
}

cmd_ca() {
	dir=$1
	mkdir -p "$dir" || die "could not make $dir"
	exists "the CA" "$dir/ca.key" "$dir/ca.crt" && return 0
	new_key "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=hfleet fleet CA" -days "$ca_days" -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$dir/ca.crt" 2>/dev/null || die "could not make the CA certificate"
	echo "$prog: made the CA: $dir/ca.crt (give it to workers and hfctl users), $dir/ca.key (keep it safe)"
}

cmd_coordinator() {
	dir=$1 hosts=$2
	need_ca "$dir"
	san=
	first=
	old_ifs=$IFS
	IFS=,
	for h in $hosts; do
		[ -n "$h" ] || continue
		case $h in
		*[!A-Za-z0-9.:*-]*) IFS=$old_ifs; die "\"$h\" is not a host name or an IP address" ;;
		esac
		if printf '%s' "$h" | grep -Eq '^[0-9.]+$|:'; then
			# Debian 12's mbedTLS (which nng uses) matches a name only
			# against DNS entries: an address is both.
			san="$san${san:+,}IP:$h,DNS:$h"
		else
			san="$san${san:+,}DNS:$h"
		fi
		[ -n "$first" ] || first=$h
	done
	IFS=$old_ifs
	[ -n "$first" ] || die "name at least one host the coordinator is reached by"
	exists "the coordinator's certificate" "$dir/coordinator.key" "$dir/coordinator.crt" && return 0
	sign "$dir" coordinator "/CN=$first" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"
	echo "$prog: made the coordinator's certificate for $san: $dir/coordinator.crt, $dir/coordinator.key"
}

cmd_worker() {
	dir=$1 id=$2
	need_ca "$dir"
	case $id in
	"" | *[!A-Za-z0-9._-]* | .*) die "\"$id\" is not a worker id this script takes (letters, digits, . _ -)" ;;
	esac
	exists "the certificate of worker $id" "$dir/worker-$id.key" "$dir/worker-$id.crt" && return 0
	sign "$dir" "worker-$id" "/CN=$id" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
	echo "$prog: made the certificate of worker $id: $dir/worker-$id.crt, $dir/worker-$id.key"
}

if [ "${1:-}" = --force ]; then
	force=1
	shift
fi
case ${1:-} in
ca) [ $# -eq 2 ] || usage; cmd_ca "$2" ;;
coordinator) [ $# -eq 3 ] || usage; cmd_coordinator "$2" "$3" ;;
worker) [ $# -eq 3 ] || usage; cmd_worker "$2" "$3" ;;
-h | --help) usage ;;
*) usage ;;
esac
