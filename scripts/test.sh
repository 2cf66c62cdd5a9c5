#!/usr/bin/env bash
# Runs every unit and integration test, then checks that no control plane process outlived the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${NAVIGATOR_BIN:-$PWD/.cache/bin}"

leftovers() { pgrep -f "^$bin/(etcd|kube-apiserver|kube-controller-manager)( |$)" || true; }
before="$(leftovers)"

cargo test --workspace --no-fail-fast "$@"

# Processes started by these tests must be gone (the watchdog gives them a few seconds to stop); ones that
# were running before (make cluster) are not ours.
ours() { comm -13 <(echo "$before" | sort) <(leftovers | sort) | sed '/^$/d'; }
for _ in $(seq 1 50); do [[ -z "$(ours)" ]] && break; sleep 0.2; done
after="$(ours)"
if [[ -n "$after" ]]; then
	echo "Leaked control plane processes after the tests:" >&2
	ps -o pid,args -p "$(echo "$after" | paste -sd,)" >&2 || true
	exit 1
fi
echo "No control plane process left behind."
