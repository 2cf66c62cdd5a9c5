#!/usr/bin/env bash
# `make demo`: builds what is missing, starts a local control plane, and shows Navigator working on it.
# Everything it starts stops on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
bin="${NAVIGATOR_BIN:-$root/.cache/bin}"
state="$root/.cache/demo"
rm -rf "$state" && mkdir -p "$state"
export PATH="$bin:$PATH"
export KUBECONFIG="$state/kubeconfig"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
pids=()
cleanup() {
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "Demo stopped."
}
trap cleanup EXIT INT TERM

say "Building navigator and the control plane launcher"
cargo build -q --bin navigator -p navigator -p navigator-testenv
navigator="$root/target/debug/navigator"

say "Starting etcd, kube-apiserver and kube-controller-manager on loopback"
"$root/target/debug/navigator-testenv" --kubeconfig-out "$KUBECONFIG" >"$state/controlplane.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do [[ -f "$KUBECONFIG" ]] && break; kill -0 "${pids[0]}" 2>/dev/null || { cat "$state/controlplane.log"; exit 1; }; sleep 0.5; done
[[ -f "$KUBECONFIG" ]] || { echo "control plane did not start; see $state/controlplane.log" >&2; exit 1; }

say "kubectl version"
kubectl version

say "navigator --version"
"$navigator" --version

say "The demo is up. From another terminal:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  export PATH=$bin:\$PATH"
echo "  kubectl get namespaces"
echo "Press Ctrl-C to stop everything the demo started."
wait "${pids[0]}"
