#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Makes the credentials of hfleet on Kubernetes and puts them in the
# cluster (kubectl's current context), in namespace hfleet (or $HFLEET_NAMESPACE):
#
#   Secret hfleet-database     conninfo: the coordinator's database conninfo,
#                              read from CONNINFO_FILE (password included)
#   Secret hfleet-tls          ca.crt, coordinator.crt, coordinator.key: the
#                              coordinator's certificate for the Service's
#                              names (hf-coordinator, .NS, .NS.svc,
#                              .NS.svc.cluster.local), localhost, 127.0.0.1
#                              and the names in $HFLEET_COORDINATOR_NAMES
#                              (comma-separated: a LoadBalancer's, for
#                              workers or users outside the cluster)
#   ConfigMap hfleet-ca        ca.crt: what workers and hfctl verify against
#
#   deploy/kubernetes/make-secrets.sh CONNINFO_FILE
#
# The CA and the certificate are made by deploy/fleet-certs.sh in
# deploy/kubernetes/secrets/tls/ (git-ignored; keep ca.key off the cluster
# and safe: it signs the next certificate); files that exist are kept.
# Applying again replaces the Secrets (a new conninfo: then
# "kubectl -n hfleet rollout restart deploy/hf-coordinator").
# The tokens: worker-tokens.sh, once the coordinator runs.
set -eu

ns=${HFLEET_NAMESPACE:-hfleet}
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] && [ -s "$1" ] || { sed -n '4,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
command -v kubectl >/dev/null 2>&1 || { echo "make-secrets.sh: kubectl not found" >&2; exit 1; }
tls=$here/secrets/tls
mkdir -p "$tls"
chmod 0700 "$here/secrets"

svc=hf-coordinator
names="$svc,$svc.$ns,$svc.$ns.svc,$svc.$ns.svc.cluster.local,localhost,127.0.0.1"
[ -n "${HFLEET_COORDINATOR_NAMES:-}" ] && names="$names,$HFLEET_COORDINATOR_NAMES"
"$here/../fleet-certs.sh" ca "$tls"
"$here/../fleet-certs.sh" coordinator "$tls" "$names"

apply() {
	kubectl -n "$ns" "$@" --dry-run=client -o yaml | kubectl -n "$ns" apply -f -
}
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
apply create secret generic hfleet-database --from-file=conninfo="$1"
apply create secret generic hfleet-tls --from-file=ca.crt="$tls/ca.crt" \
	--from-file=coordinator.crt="$tls/coordinator.crt" --from-file=coordinator.key="$tls/coordinator.key"
apply create configmap hfleet-ca --from-file=ca.crt="$tls/ca.crt"
echo "make-secrets.sh: done; next: kubectl apply -k $here/base, then $here/worker-tokens.sh"
