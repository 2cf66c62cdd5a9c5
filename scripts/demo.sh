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

say "Installing the CRDs"
kubectl apply -f crds/
kubectl wait --for=condition=Established -f crds/ --timeout=60s

say "Starting the simulated cloud on 127.0.0.1:8089 and the operator"
"$navigator" simulator --listen 127.0.0.1:8089 --provision-seconds 3 >"$state/simulator.log" 2>&1 &
pids+=($!)
"$navigator" run --listen 127.0.0.1:8080 >"$state/operator.log" 2>&1 &
pids+=($!)

say "kubectl apply -f examples/"
kubectl apply -f examples/

say "Waiting until the endpoint, provider, customers and subscriptions are Ready"
for kind in cloudendpoints providerorgs customerorgs cloudservicesubscriptions; do
	kubectl wait --for=condition=Ready "$kind" --all -A --timeout=180s
done

say "kubectl get navigator -A"
kubectl get navigator -A

say "What the simulated cloud holds"
curl -s -H "Authorization: Bearer navigator-dev-token" http://127.0.0.1:8089/v1/orgs; echo

say "The demo is up. From another terminal:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  export PATH=$bin:\$PATH"
echo "  kubectl get navigator -A"
echo "  kubectl describe customerorg -n acme-cloud"
echo "Logs: $state/operator.log and $state/simulator.log"
echo "Press Ctrl-C to stop everything the demo started."
wait "${pids[0]}"
