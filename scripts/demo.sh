#!/usr/bin/env bash
# `make demo`: builds what is missing, starts a local control plane, and shows Navigator working on it.
# Everything it starts stops on Ctrl-C, or at the end with DEMO_EXIT=1.
#
#   DEMO_SIMULATOR_PORT  loopback port of the simulated cloud (default: a free one)
#   DEMO_OPERATOR_PORT   loopback port of the operator's /metrics, /healthz, /readyz (default: a free one)
#   DEMO_VCD_PORT        loopback port of the Cloud Director emulator (HTTPS; default: a free one)
#   DEMO_EXIT=1          run everything, then stop everything; exit 0, or non-zero on any failure
#   DEMO_NODE=1          run the operator as Pods: a node joins the control plane, the image `make image`
#                        builds is imported and the chart installed with helm; the simulated cloud listens
#                        on this machine's address (pods cannot reach loopback). Request Tracker and the
#                        Cloud Director part are skipped (both serve on loopback only).
#   DEMO_STATE_DIR       kubeconfig, logs and the rewritten examples (default .cache/demo, emptied first;
#                        a directory given here must be empty or absent)
#   NAVIGATOR_BIN        where kubectl and helm are (default .cache/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
bin="${NAVIGATOR_BIN:-$root/.cache/bin}"
demo_exit="${DEMO_EXIT:-0}"
demo_node="${DEMO_NODE:-}"
[[ "$demo_node" == 0 ]] && demo_node=""
if [[ -n "${DEMO_STATE_DIR:-}" ]]; then
	state="$DEMO_STATE_DIR"
	# Never empty a directory someone named: it could hold anything.
	[[ ! -e "$state" || -z "$(ls -A "$state")" ]] || { echo "demo: DEMO_STATE_DIR=$state is not empty" >&2; exit 1; }
	mkdir -p "$state"
else
	state="$root/.cache/demo"
	rm -rf "$state" && mkdir -p "$state"
fi
export PATH="$bin:$PATH"
export KUBECONFIG="$state/kubeconfig"

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step="starting"
say() {
	check_alive
	step="$*"
	printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"
}
fail() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

# The processes the demo runs in the background, by name, with their logs.
names=()
declare -A pid_of log_of
start() { # NAME LOG COMMAND...
	local name="$1" log="$2"
	shift 2
	"$@" >"$log" 2>&1 &
	pid_of[$name]=$!
	log_of[$name]=$log
	names+=("$name")
}
reported=""
# Stops the demo, with the end of its log, as soon as one of them has exited.
check_alive() {
	local name status
	for name in "${names[@]}"; do
		kill -0 "${pid_of[$name]}" 2>/dev/null && continue
		status=0
		wait "${pid_of[$name]}" || status=$?
		printf '\ndemo: the %s exited (status %s) during "%s". Last lines of %s:\n' \
			"$name" "$status" "$step" "${log_of[$name]}" >&2
		tail -n 20 "${log_of[$name]}" | sed 's/^/  /' >&2
		reported=1
		exit 1
	done
}
# Runs a command that waits (kubectl wait, a poll) in the background and checks meanwhile that the
# processes above still run, so that a crash stops the demo now rather than at the command's timeout.
waiting=""
watching() {
	"$@" &
	waiting=$!
	while kill -0 "$waiting" 2>/dev/null; do
		check_alive
		sleep 0.2
	done
	local status=0
	wait "$waiting" || status=$?
	waiting=""
	return "$status"
}

running() { # PID: alive and not a zombie
	local stat
	stat="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ "$stat" != Z* ]]
}
any_running() { # PID...
	local pid
	for pid in "$@"; do running "$pid" && return 0; done
	return 1
}
stop_all() { # PID...: SIGTERM, up to 15 s to exit, then SIGKILL
	local pid _
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 1 75); do
		any_running "$@" || return 0
		sleep 0.2
	done
	for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
}
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [[ -n "$waiting" ]]; then stop_all "$waiting"; fi
	if [[ -n "${pid_of[operator]:-}" || -n "${pid_of[simulator]:-}" ]]; then
		if [[ -n "${pid_of[operator]:-}" && "$status" -ne 0 && "$status" -ne 130 && -z "$reported" ]]; then
			printf '\ndemo: last lines of the operator log (%s):\n' "${log_of[operator]}" >&2
			tail -n 15 "${log_of[operator]}" | sed 's/^/  /' >&2
		fi
		stop_all ${pid_of[operator]:+"${pid_of[operator]}"} "${pid_of[simulator]}" ${pid_of[cloud director]:+"${pid_of[cloud director]}"}
	fi
	# navigator-testenv's watchdog stops RT's server and removes its folder when the launcher exits.
	if [[ -n "${pid_of[request tracker]:-}" ]]; then stop_all "${pid_of[request tracker]}"; fi
	if [[ -n "${pid_of[control plane]:-}" ]]; then
		# etcd, kube-apiserver and kube-controller-manager are children of navigator-testenv, whose
		# watchdog stops them when it exits; wait for them too so that nothing outlives the demo.
		# Its watchdogs stop them in order (a node's containers through containerd first): signal only the
		# launcher, give them time, then stop whatever is left.
		local cp _
		mapfile -t cp < <(pgrep -P "${pid_of[control plane]}" || true)
		stop_all "${pid_of[control plane]}"
		for _ in $(seq 1 300); do
			any_running "${cp[@]}" || break
			sleep 0.2
		done
		stop_all "${cp[@]}"
	fi
	wait 2>/dev/null || true
	if [[ "$status" -ne 0 && "$status" -ne 130 ]]; then
		printf '\ndemo: failed during "%s" (exit status %s). Logs: %s\n' "$step" "$status" "$state" >&2
	fi
	echo "Demo stopped."
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# choose_port VARIABLE [AVOID]: the port asked for in $VARIABLE, which must be free, or else a free one.
choose_port() {
	local var="$1" avoid="${2:-}" port="${!1:-}" _
	if [[ -n "$port" ]]; then
		if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then fail "$var=$port is not a port number"; fi
		[[ "$port" != "$avoid" ]] || fail "$var=$port is the port chosen for the other listener"
		! port_in_use "$port" || fail "port $port on 127.0.0.1 ($var) is already in use: free it, or unset $var to let the demo pick a free port"
		echo "$port"
		return
	fi
	# Below Linux's ephemeral range (32768-60999), so outgoing connections do not take it meanwhile.
	for _ in $(seq 1 500); do
		port=$((20000 + RANDOM % 12000))
		[[ "$port" != "$avoid" ]] && ! port_in_use "$port" && { echo "$port" && return; }
	done
	fail "no free port on 127.0.0.1 found for the $var listener"
}
# Fail now, before the build, when a port asked for is taken.
[[ -z "${DEMO_SIMULATOR_PORT:-}" ]] || [[ -n "$(choose_port DEMO_SIMULATOR_PORT)" ]]
[[ -z "${DEMO_OPERATOR_PORT:-}" ]] || [[ -n "$(choose_port DEMO_OPERATOR_PORT "${DEMO_SIMULATOR_PORT:-}")" ]]

say "Building navigator and the control plane launcher (navigator-testenv); the first build takes several minutes"
cargo build -p navigator --bin navigator -p navigator-testenv --bin navigator-testenv
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
navigator="$target/debug/navigator"
testenv="$target/debug/navigator-testenv"
[[ -x "$navigator" && -x "$testenv" ]] || fail "cargo build did not produce $navigator and $testenv"

node_args=()
if [[ -n "$demo_node" ]]; then
	say "Building the operator's image (make image: buildah from scratch, no daemon) and the node's binaries"
	scripts/image.sh | tee "$state/image.txt"
	image="$(sed -n 's/^image: *//p' "$state/image.txt")"
	tests/controlplane/build.sh --node
	node_args=(--node --import "$(sed -n 's/^archive: *//p' "$state/image.txt")")
	say "Starting etcd, kube-apiserver and kube-controller-manager, and a node (containerd, kubelet, kube-proxy, kube-scheduler)"
else
	say "Starting etcd, kube-apiserver and kube-controller-manager on loopback"
fi
start "control plane" "$state/controlplane.log" "$testenv" --kubeconfig-out "$KUBECONFIG" "${node_args[@]}"
wait_kubeconfig() {
	for _ in $(seq 1 600); do [[ -f "$KUBECONFIG" ]] && return; sleep 0.5; done
	fail "the control plane did not start in 5 minutes; see $state/controlplane.log"
}
watching wait_kubeconfig

say "kubectl version"
kubectl version

say "navigator --version"
"$navigator" --version

if [[ -n "$demo_node" ]]; then
	say "kubectl get nodes -o wide"
	grep -E '^Node|^Imported' "$state/controlplane.log" || true
	kubectl get nodes -o wide
fi

say "Installing the CRDs"
kubectl apply -f crds/
watching kubectl wait --for=condition=Established -f crds/ --timeout=60s

# The vendor's ticket system: a real Request Tracker when it is installed (make deps), else the simulator.
rt=""
if [[ -z "$demo_node" && -x /usr/share/request-tracker5/libexec/rt-server && -x /usr/sbin/rt-setup-database-5 ]]; then
	rt=1
	say "Starting Request Tracker 5 on loopback (SQLite in a temporary folder): the vendor's ticket system"
	start "request tracker" "$state/request-tracker.log" "$testenv" rt --env-out "$state/request-tracker.env"
	wait_rt() {
		for _ in $(seq 1 600); do [[ -f "$state/request-tracker.env" ]] && return; sleep 0.2; done
		fail "Request Tracker did not start in 2 minutes; see $state/request-tracker.log"
	}
	watching wait_rt
	# shellcheck source=/dev/null
	source "$state/request-tracker.env"
	head -n 1 "$state/request-tracker.log"
else
	say "Request Tracker is not installed (make deps installs it): support requests go to the simulator"
fi

sim_port="$(choose_port DEMO_SIMULATOR_PORT "${DEMO_OPERATOR_PORT:-}")"
operator_port="$(choose_port DEMO_OPERATOR_PORT "$sim_port")"
wait_http() { # URL: until something answers there
	for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return; sleep 0.2; done
	fail "nothing answers on $1 after 60 s"
}
if [[ -n "$demo_node" ]]; then
	# The address of the default route, which pods reach through the node's bridge.
	host="$(ip -4 route get 203.0.113.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')"
	[[ -n "$host" ]] || fail "DEMO_NODE=1 needs an address beyond loopback that pods can reach"
	sim_url="http://$host:$sim_port"
	say "Starting the simulated cloud on $host:$sim_port; helm install of the chart with the image $image"
	start simulator "$state/simulator.log" "$navigator" simulator --listen "$host:$sim_port" --provision-seconds 3
	helm install navigator charts/navigator --namespace navigator-system --create-namespace \
		--set "image.repository=${image%:*},image.tag=${image##*:},image.pullPolicy=Never"
	watching kubectl -n navigator-system rollout status deployment/navigator --timeout=180s
	kubectl -n navigator-system get pods -o wide
	echo "The leader: $(kubectl -n navigator-system get lease navigator -o jsonpath='{.spec.holderIdentity}')"
	# The leader's /metrics through the apiserver's proxy (the metrics Service may pick the standby, which
	# computes no business metrics).
	metrics() {
		local leader
		leader="$(kubectl -n navigator-system get lease navigator -o jsonpath='{.spec.holderIdentity}')"
		kubectl get --raw "/api/v1/namespaces/navigator-system/pods/$leader:8080/proxy/metrics"
	}
else
	sim_url="http://127.0.0.1:$sim_port"
	say "Starting the simulated cloud on 127.0.0.1:$sim_port and the operator (metrics on 127.0.0.1:$operator_port)"
	start simulator "$state/simulator.log" "$navigator" simulator --listen "127.0.0.1:$sim_port" --provision-seconds 3
	start operator "$state/operator.log" "$navigator" run --listen "127.0.0.1:$operator_port"
	watching wait_http "http://127.0.0.1:$operator_port/healthz"
	metrics() { curl -sf "http://127.0.0.1:$operator_port/metrics"; }
fi
watching wait_http "$sim_url/"

say "A usage history dated last month on the simulator (X-Simulator-Time), so that there is a closed period to invoice"
last_month="$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)"
sim_at() { # METHOD TIME PATH [BODY]
	curl -sSf -o /dev/null -X "$1" -H "Authorization: Bearer navigator-dev-token" -H "Content-Type: application/json" \
		-H "X-Simulator-Time: $2" "$sim_url/v1/$3" ${4:+-d "$4"}
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

# examples/ name the simulator's usual address; the demo's simulator listens where the demo chose.
say "kubectl apply -f examples/ (the CloudEndpoint's url set to $sim_url)"
mkdir -p "$state/examples"
for file in examples/*.yaml; do
	sed "s#http://127.0.0.1:8089#$sim_url#g" "$file" >"$state/examples/${file#examples/}"
done
grep -q "url: $sim_url\$" "$state/examples/"*.yaml ||
	fail "no 'url: http://127.0.0.1:8089' in examples/*.yaml to point at the demo's simulator"
if [[ -n "$rt" ]]; then
	echo "Support requests go to Request Tracker at $RT_URL (CloudEndpoint vendor-support, driver RequestTracker)"
	sed -i '/supportEndpointRef:/{n;s/name: simulator/name: vendor-support/}' "$state/examples/10-provider.yaml"
	grep -q "name: vendor-support" "$state/examples/10-provider.yaml" ||
		fail "no 'supportEndpointRef: name: simulator' in examples/10-provider.yaml to point at Request Tracker"
	cat >"$state/examples/03-request-tracker.yaml" <<-EOF
		apiVersion: v1
		kind: Secret
		metadata:
		  name: vendor-support-credentials
		  namespace: navigator-system
		stringData:
		  token: $RT_NAVIGATOR_TOKEN
		---
		apiVersion: navigator.cloudpartner.io/v1alpha1
		kind: CloudEndpoint
		metadata:
		  name: vendor-support
		spec:
		  driver: RequestTracker
		  url: $RT_URL
		  credentialsSecretRef:
		    name: vendor-support-credentials
		    namespace: navigator-system
		    key: token
		  pollInterval: 5s
		  requestTracker:
		    queue: $RT_QUEUE
		    customerField: Customer
	EOF
fi
kubectl apply -f "$state/examples/"

say "Waiting until the endpoint, provider, customers and subscriptions are Ready"
for kind in cloudendpoints providerorgs customerorgs cloudservicesubscriptions; do
	watching kubectl wait --for=condition=Ready "$kind" --all -A --timeout=180s
done

say "kubectl get navigator -A"
kubectl get navigator -A

say "What the simulated cloud holds"
curl -sSf -H "Authorization: Bearer navigator-dev-token" "$sim_url/v1/orgs"
echo

if [[ -z "$demo_node" ]]; then
	say "The role catalogue and the no-escalation admission policy, from the Helm chart's templates"
	helm template navigator charts/navigator --show-only templates/roles.yaml \
		--show-only templates/access-admission.yaml | kubectl apply -f -
fi

say "Access grants: RoleBindings in the provider and customer namespaces, users on the endpoint"
watching kubectl wait --for=jsonpath='{.status.phase}'=Active accessgrants --all -n acme-cloud --timeout=120s
kubectl get accessgrants -n acme-cloud
kubectl get rolebindings -n acme-cloud-globex
echo "globex-admin on the endpoint: $(kubectl get accessgrant globex-admin -n acme-cloud -o jsonpath='{.status.endpointUser}')"

if [[ -n "$rt" ]]; then
	say "Support: globex-vm-boot is a ticket in Request Tracker; the vendor answers it through RT's REST2 API"
	watching kubectl wait --for=condition=Ready supportrequest/globex-vm-boot -n acme-cloud --timeout=120s
	ticket="$(kubectl get supportrequest globex-vm-boot -n acme-cloud -o jsonpath='{.status.ticketId}')"
	echo "The ticket in RT's web UI: $RT_URL/Ticket/Display.html?id=$ticket (user navigator, password navigator-test-password)"
	curl -sSf -o /dev/null -X POST -H "Authorization: token $RT_VENDOR_TOKEN" -H "Content-Type: application/json" \
		-d '{"Content": "We are looking into it. Please send the hypervisor logs.", "ContentType": "text/plain"}' \
		"$RT_URL/REST/2.0/ticket/$ticket/correspond"
	wait_vendor_reply() {
		local filter='{.status.comments[?(@.source=="Vendor")].body}'
		for _ in $(seq 1 120); do
			[[ -n "$(kubectl get supportrequest globex-vm-boot -n acme-cloud -o jsonpath="$filter")" ]] && return
			sleep 1
		done
		fail "the vendor's reply did not reach globex-vm-boot's status in 120 s"
	}
	watching wait_vendor_reply
else
	say "Support: the vendor answers globex-vm-boot (POST /sim/tickets/{id}/reply on the simulator)"
	watching kubectl wait --for=condition=Ready supportrequest/globex-vm-boot -n acme-cloud --timeout=120s
	ticket="$(kubectl get supportrequest globex-vm-boot -n acme-cloud -o jsonpath='{.status.ticketId}')"
	curl -sSf -o /dev/null -X POST -H "Authorization: Bearer navigator-dev-token" -H "Content-Type: application/json" \
		-d '{"body": "We are looking into it. Please send the hypervisor logs.", "state": "WaitingOnCustomer"}' \
		"$sim_url/sim/tickets/$ticket/reply"
	watching kubectl wait --for=jsonpath='{.status.vendorState}'=WaitingOnCustomer supportrequest/globex-vm-boot \
		-n acme-cloud --timeout=120s
fi
kubectl get supportrequests -n acme-cloud -o wide
kubectl get supportrequest globex-vm-boot -n acme-cloud \
	-o jsonpath='{range .status.comments[*]}  {.source} {.author}: {.body}{"\n"}{end}'
kubectl get events -n acme-cloud --field-selector involvedObject.name=globex-vm-boot

say "Invoices for ${last_month}: one per customer, in the customer namespaces (kubectl get invoices -A)"
wait_invoices() {
	for _ in $(seq 1 120); do
		[[ "$(kubectl get invoices -A --no-headers 2>/dev/null | wc -l)" -ge 2 ]] && return
		sleep 1
	done
	fail "no invoice for each customer after 120 s"
}
watching wait_invoices
kubectl get invoices -A
kubectl get invoice "globex-${last_month}" -n acme-cloud-globex -o yaml

say "navigator invoice export --provider-namespace acme-cloud --period ${last_month} (CSV, read access only)"
"$navigator" invoice export --provider-namespace acme-cloud --period "$last_month" | tee "$state/invoices-${last_month}.csv"

say "navigator usage report --provider-namespace acme-cloud --period ${last_month}"
"$navigator" usage report --provider-namespace acme-cloud --period "$last_month"

say "This period so far (ProviderOrg status, as of the last full hour) and the contract's burn-down"
kubectl get providerorg acme-cloud -o jsonpath='{.status.billing}'
echo
kubectl get commitmentcontract acme-2026 -n acme-cloud \
	-o jsonpath='consumed {.status.consumed}{"\n"}remaining {.status.remaining}{"\n"}forecast {.status.forecast}{"\n"}'

say "globex's invoice for ${last_month} as documents: navigator invoice render (PDF and HTML, the same bytes on every run)"
for format in pdf html; do
	"$navigator" invoice render "globex-${last_month}" -n acme-cloud-globex --format "$format" \
		--out "$state/invoice-globex-${last_month}.$format"
	echo "  $state/invoice-globex-${last_month}.$format"
done

say "Business metrics on the operator's /metrics (a few of them), the Grafana dashboards and the alerts"
metrics |
	grep -E '^navigator_(billing_estimated_charges|invoiced_total|commitment_amount|subscriptions|support_requests)\{'
echo "Grafana dashboards (JSON; the chart ships them as ConfigMaps with metrics.dashboards.enabled=true):"
echo "  $root/charts/navigator/dashboards/business.json"
echo "  $root/charts/navigator/dashboards/operations.json"
echo "Alert rules (the chart's PrometheusRule with metrics.prometheusRule.enabled=true):"
echo "  $root/charts/navigator/rules/navigator.rules.yaml"

if [[ -n "$demo_node" ]]; then
	say "The operator runs as Pods (kubectl -n navigator-system get pods,lease)"
	kubectl -n navigator-system get pods,lease -o wide
	say "Cloud Director part skipped with DEMO_NODE=1: the emulator serves on loopback only, which pods cannot reach"
	if [[ "$demo_exit" != 0 ]]; then
		say "DEMO_EXIT=$demo_exit: the demo ran to the end; stopping everything it started"
		exit 0
	fi
	say "The demo is up. From another terminal:"
	echo "  export KUBECONFIG=$KUBECONFIG"
	echo "  export PATH=$bin:\$PATH"
	echo "  kubectl get navigator -A"
	echo "  kubectl -n navigator-system get pods,lease   # the operator's pods and its leader"
	echo "  kubectl -n navigator-system logs deployment/navigator"
	echo "  kubectl get --raw /api/v1/namespaces/navigator-system/services/navigator-metrics:metrics/proxy/metrics"
	echo "Press Ctrl-C to stop everything the demo started."
	pids=()
	for name in "${names[@]}"; do pids+=("${pid_of[$name]}"); done
	while :; do
		wait -n "${pids[@]}" || true
		check_alive
	done
fi

vcd_port="$(choose_port DEMO_VCD_PORT "$operator_port")"
vcd_url="https://127.0.0.1:$vcd_port"
vcd_tls="$state/vcd-tls"
say "A second provider on VMware Cloud Director: the emulator on $vcd_url (navigator simulator --api cloud-director)"
start "cloud director" "$state/cloud-director.log" "$navigator" simulator --api cloud-director \
	--listen "127.0.0.1:$vcd_port" --tls-dir "$vcd_tls" --provision-seconds 2
wait_ca() {
	for _ in $(seq 1 300); do grep -q "END CERTIFICATE" "$vcd_tls/ca.pem" 2>/dev/null && return; sleep 0.2; done
	fail "the Cloud Director emulator wrote no CA to $vcd_tls/ca.pem in 60 s"
}
watching wait_ca
vcd() { curl -sSf --cacert "$vcd_tls/ca.pem" -u administrator:navigator-dev-password "$vcd_url$1"; }
wait_vcd() { for _ in $(seq 1 300); do vcd /sim/stats >/dev/null 2>&1 && return; sleep 0.2; done; fail "the emulator does not answer on $vcd_url"; }
watching wait_vcd
echo "API versions it offers:"
curl -sSf --cacert "$vcd_tls/ca.pem" "$vcd_url/api/versions" | grep -o '<Version>[^<]*</Version>' | tr '\n' ' '
echo

# examples/cloud-director/ name the emulator's usual address; its CA is made at start, so the demo adds it.
say "kubectl apply -f examples/cloud-director/ (url $vcd_url, caBundle from $vcd_tls/ca.pem)"
mkdir -p "$state/cloud-director"
for file in examples/cloud-director/*.yaml; do
	sed "s#https://127.0.0.1:8443#$vcd_url#g" "$file" >"$state/cloud-director/${file#examples/cloud-director/}"
done
endpoint="$state/cloud-director/02-endpoint.yaml"
grep -q "url: $vcd_url\$" "$endpoint" || fail "no 'url: https://127.0.0.1:8443' in examples/cloud-director/02-endpoint.yaml"
{ echo "  caBundle: |"; sed 's/^/    /' "$vcd_tls/ca.pem"; } >>"$endpoint"
kubectl apply -f "$state/cloud-director/"

say "Waiting until the Cloud Director endpoint, its customers, subscriptions and grant are Ready"
watching kubectl wait --for=condition=Ready cloudendpoint/cloud-director --timeout=120s
for kind in customerorgs cloudservicesubscriptions; do
	watching kubectl wait --for=condition=Ready "$kind" --all -n vcloud-partner --timeout=180s
done
watching kubectl wait --for=jsonpath='{.status.phase}'=Active accessgrants --all -n vcloud-partner --timeout=120s

say "Two endpoints side by side: the simulator (driver Simulator) and Cloud Director (driver CloudDirector)"
kubectl get cloudendpoints
kubectl get customerorgs,cloudservicesubscriptions,accessgrants -n vcloud-partner

say "What Cloud Director holds: organisations, their users (with the mapped role) and VDCs (GET /sim/inventory)"
vcd /sim/inventory
echo

if [[ "$demo_exit" != 0 ]]; then
	say "DEMO_EXIT=$demo_exit: the demo ran to the end; stopping everything it started"
	exit 0
fi

say "The demo is up. From another terminal:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  export PATH=$bin:\$PATH"
echo "  kubectl get navigator -A"
echo "  kubectl describe customerorg -n acme-cloud"
echo "  curl -s http://127.0.0.1:$operator_port/metrics   # the operator's metrics"
echo "  curl -s -H 'Authorization: Bearer navigator-dev-token' $sim_url/v1/orgs   # the simulated cloud"
if [[ -n "$rt" ]]; then
	echo "  $RT_URL/Ticket/Display.html?id=$ticket   # the support ticket in Request Tracker (navigator / navigator-test-password)"
fi
echo "  curl -s --cacert $vcd_tls/ca.pem -u administrator:navigator-dev-password $vcd_url/sim/inventory   # Cloud Director"
echo "Logs: $state/operator.log, $state/simulator.log and $state/cloud-director.log"
echo "Press Ctrl-C to stop everything the demo started."
pids=()
for name in "${names[@]}"; do pids+=("${pid_of[$name]}"); done
while :; do
	wait -n "${pids[@]}" || true
	check_alive
done
