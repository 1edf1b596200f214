#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Makes hfleet's tokens on Kubernetes, through the running coordinator
# (kubectl's current context, namespace hfleet or $HFLEET_NAMESPACE):
#
#   Secret hfleet-admin-token    token: the admin token "ops", made once
#                                with "hf-coordinator --create-token" in the
#                                coordinator's pod (the coordinator is then
#                                restarted once, as it loads such tokens at
#                                start); for hfctl (docs/operations.md "Tokens")
#   Secret hfleet-worker-tokens  one key per GPU node, named by the node: the
#                                token of the worker whose id is that node's
#                                name (the DaemonSet's HFLEET_WORKER_ID), made
#                                with "hfctl token create NODE --role worker"
#
#   deploy/kubernetes/worker-tokens.sh [NODE...]
#
# Without NODE, the nodes labelled nvidia.com/gpu.present=true (the
# DaemonSet's nodeSelector).  A node that has a token keeps it; run it again
# after adding nodes: the DaemonSet's pod on a new node fails with "no token
# for worker NODE" until then, and starts once the kubelet has refreshed the
# Secret (within a minute or two).  Revoking a node's token: hfctl token
# revoke ID, then delete its key from the Secret.
set -eu

ns=${HFLEET_NAMESPACE:-hfleet}
k() { kubectl -n "$ns" "$@"; }
command -v kubectl >/dev/null 2>&1 || { echo "worker-tokens.sh: kubectl not found" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

if k get secret hfleet-admin-token >/dev/null 2>&1; then
	k get secret hfleet-admin-token -o jsonpath='{.data.token}' | base64 -d >"$tmp/admin"
else
	k exec deploy/hf-coordinator -- hfleet-entrypoint hf-coordinator -c /etc/hfleet/hf-coordinator.conf \
		--create-token ops --role admin >"$tmp/admin"
	k create secret generic hfleet-admin-token --from-file=token="$tmp/admin"
	k rollout restart deploy/hf-coordinator
	k rollout status deploy/hf-coordinator --timeout=10m
fi

if [ $# -gt 0 ]; then
	nodes=$*
else
	nodes=$(kubectl get nodes -l nvidia.com/gpu.present=true -o jsonpath='{.items[*].metadata.name}')
fi
mkdir "$tmp/tokens"
if k get secret hfleet-worker-tokens >/dev/null 2>&1; then
	for key in $(k get secret hfleet-worker-tokens -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}'); do
		k get secret hfleet-worker-tokens -o "go-template={{index .data \"$key\" | base64decode}}" >"$tmp/tokens/$key"
	done
fi
made=0
for node in $nodes; do
	if [ -s "$tmp/tokens/$node" ]; then
		echo "worker-tokens.sh: $node has a token; kept"
		continue
	fi
	# The admin token goes on stdin, never on a command line.
	k exec -i deploy/hf-coordinator -- sh -c 'HFLEET_TOKEN=$(cat) exec hfctl token create "$1" --role worker' \
		sh "$node" <"$tmp/admin" >"$tmp/tokens/$node"
	echo "worker-tokens.sh: made the token of worker $node"
	made=$((made + 1))
done
[ "$made" -gt 0 ] || { echo "worker-tokens.sh: no new token"; exit 0; }
k create secret generic hfleet-worker-tokens --from-file="$tmp/tokens" --dry-run=client -o yaml | k apply -f -
