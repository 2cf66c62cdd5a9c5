#!/usr/bin/env bash
# Runs every unit and integration test, then a non-interactive `make demo` (DEMO_EXIT=1) with ports 8080
# and 8089 taken, and checks after each that no control plane process outlived it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${NAVIGATOR_BIN:-$PWD/.cache/bin}"

leftovers() { pgrep -f "^$bin/(etcd|kube-apiserver|kube-controller-manager|kubelet|kube-proxy|kube-scheduler|source-controller|kustomize-controller)( |$)" || true; }
before="$(leftovers)"

# Processes started since the start of this script must be gone (the watchdog gives them a few seconds to
# stop); ones that were running before (make cluster) are not ours.
check_leftovers() { # AFTER_WHAT
	ours() { comm -13 <(echo "$before" | sort) <(leftovers | sort) | sed '/^$/d'; }
	for _ in $(seq 1 50); do [[ -z "$(ours)" ]] && break; sleep 0.2; done
	local after
	after="$(ours)"
	if [[ -n "$after" ]]; then
		echo "Leaked control plane processes after $1:" >&2
		ps -o pid,args -p "$(echo "$after" | paste -sd,)" >&2 || true
		exit 1
	fi
	echo "No control plane process left behind by $1."
}

cargo test --workspace --no-fail-fast "$@"
check_leftovers "the tests"

# The demo smoke run: the first command of the README must keep working, also where the usual ports are
# taken. Stand-in listeners hold 8080 and 8089: simulators that refuse the demo's token, so a demo that
# still used either port would fail (its operator could not listen, its endpoint would never be Ready).
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
smoke="$target/tmp/demo-smoke"
rm -rf "$smoke" && mkdir -p "$smoke"
log="$smoke/demo.log"
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
stand_ins=()
stop_stand_ins() {
	for pid in "${stand_ins[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait "${stand_ins[@]}" 2>/dev/null || true
}
trap stop_stand_ins EXIT
for port in 8080 8089; do
	# A port something else already holds is taken just as well.
	port_in_use "$port" && continue
	"$target/debug/navigator" simulator --listen "127.0.0.1:$port" --token not-the-demo-token \
		>"$smoke/stand-in-$port.log" 2>&1 &
	stand_ins+=($!)
	for _ in $(seq 1 50); do port_in_use "$port" && break; sleep 0.2; done
	port_in_use "$port" || { echo "Could not take port $port for the demo smoke run:" >&2; cat "$smoke/stand-in-$port.log" >&2; exit 1; }
done

echo "Demo smoke run: DEMO_EXIT=1 scripts/demo.sh with 127.0.0.1:8080 and 127.0.0.1:8089 taken (log: $log)"
started=$SECONDS
if ! env -u DEMO_SIMULATOR_PORT -u DEMO_OPERATOR_PORT DEMO_EXIT=1 DEMO_STATE_DIR="$smoke/state" \
	scripts/demo.sh >"$log" 2>&1 </dev/null; then
	echo "The demo smoke run failed after $((SECONDS - started)) s. Last lines of $log:" >&2
	tail -n 40 "$log" >&2
	exit 1
fi
grep -E '^==> Starting the simulated cloud' "$log" | sed 's/^==> /  /'
# The objects and their conditions, as the demo printed them.
awk '/^==> kubectl get navigator -A$/ { on = 1; next } /^==> / { on = 0 } on' "$log" | sed '/^$/d; s/^/  /'
echo "Demo smoke run passed in $((SECONDS - started)) s."
stop_stand_ins
check_leftovers "the demo"
