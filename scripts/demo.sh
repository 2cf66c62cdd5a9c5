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

say "A usage history dated last month on the simulator (X-Simulator-Time), so that there is a closed period to invoice"
last_month="$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)"
sim_at() { # METHOD TIME PATH [BODY]
	curl -sSf -o /dev/null -X "$1" -H "Authorization: Bearer navigator-dev-token" -H "Content-Type: application/json" \
		-H "X-Simulator-Time: $2" "http://127.0.0.1:8089/v1/$3" ${4:+-d "$4"}
}
sim_at PUT "${last_month}-01T00:00:00Z" orgs/globex '{"displayName": "Globex Corporation"}'
sim_at PUT "${last_month}-01T00:00:00Z" orgs/initech '{"displayName": "Initech"}'
sim_at PUT "${last_month}-03T08:00:00Z" orgs/globex/instances/globex-migration \
	'{"serviceType": "compute", "resources": {"vcpu": 8, "memoryGiB": 32, "storageGiB": 200}}'
sim_at DELETE "${last_month}-13T08:00:00Z" orgs/globex/instances/globex-migration
sim_at PUT "${last_month}-10T00:00:00Z" orgs/initech/instances/initech-batch \
	'{"serviceType": "kubernetes", "resources": {"vcpu": 16, "memoryGiB": 64, "storageGiB": 100}}'
sim_at DELETE "${last_month}-12T00:00:00Z" orgs/initech/instances/initech-batch
echo "globex-migration ran 10 days and initech-batch 2 days in ${last_month}"

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

say "The role catalogue and the no-escalation admission policy, from the Helm chart's templates"
helm template navigator charts/navigator --show-only templates/roles.yaml \
	--show-only templates/access-admission.yaml | kubectl apply -f -

say "Access grants: RoleBindings in the provider and customer namespaces, users on the endpoint"
kubectl wait --for=jsonpath='{.status.phase}'=Active accessgrants --all -n acme-cloud --timeout=120s
kubectl get accessgrants -n acme-cloud
kubectl get rolebindings -n acme-cloud-globex
echo "globex-admin on the endpoint: $(kubectl get accessgrant globex-admin -n acme-cloud -o jsonpath='{.status.endpointUser}')"

say "Support: the vendor answers globex-vm-boot (POST /sim/tickets/{id}/reply on the simulator)"
kubectl wait --for=condition=Ready supportrequest/globex-vm-boot -n acme-cloud --timeout=120s
ticket="$(kubectl get supportrequest globex-vm-boot -n acme-cloud -o jsonpath='{.status.ticketId}')"
curl -s -X POST -H "Authorization: Bearer navigator-dev-token" -H "Content-Type: application/json" \
	-d '{"body": "We are looking into it. Please send the hypervisor logs.", "state": "WaitingOnCustomer"}' \
	"http://127.0.0.1:8089/sim/tickets/$ticket/reply" >/dev/null
kubectl wait --for=jsonpath='{.status.vendorState}'=WaitingOnCustomer supportrequest/globex-vm-boot -n acme-cloud --timeout=120s
kubectl get supportrequests -n acme-cloud -o wide
kubectl get supportrequest globex-vm-boot -n acme-cloud \
	-o jsonpath='{range .status.comments[*]}  {.source} {.author}: {.body}{"\n"}{end}'
kubectl get events -n acme-cloud --field-selector involvedObject.name=globex-vm-boot

say "Invoices for ${last_month}: one per customer, in the customer namespaces (kubectl get invoices -A)"
for _ in $(seq 1 120); do
	[[ "$(kubectl get invoices -A --no-headers 2>/dev/null | wc -l)" -ge 2 ]] && break
	sleep 1
done
kubectl get invoices -A
kubectl get invoice "globex-${last_month}" -n acme-cloud-globex -o yaml

say "navigator invoice export --provider-namespace acme-cloud --period ${last_month} (CSV, read access only)"
"$navigator" invoice export --provider-namespace acme-cloud --period "$last_month" | tee "$state/invoices-${last_month}.csv"

say "navigator usage report --provider-namespace acme-cloud --period ${last_month}"
"$navigator" usage report --provider-namespace acme-cloud --period "$last_month"

say "This period so far (ProviderOrg status, as of the last full hour) and the contract's burn-down"
kubectl get providerorg acme-cloud -o jsonpath='{.status.billing}'; echo
kubectl get commitmentcontract acme-2026 -n acme-cloud \
	-o jsonpath='consumed {.status.consumed}{"\n"}remaining {.status.remaining}{"\n"}forecast {.status.forecast}{"\n"}'

say "The demo is up. From another terminal:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  export PATH=$bin:\$PATH"
echo "  kubectl get navigator -A"
echo "  kubectl describe customerorg -n acme-cloud"
echo "Logs: $state/operator.log and $state/simulator.log"
echo "Press Ctrl-C to stop everything the demo started."
wait "${pids[0]}"
