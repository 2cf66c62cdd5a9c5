#!/usr/bin/env bash
# Builds the Cloud Director conformance program (VMware's Go SDK, pinned in go.mod) into
# $VCD_CONFORMANCE_BIN_DIR (default: .cache/bin at the repository root), only when its sources or the Go
# version changed since the last build (a stamp beside the binary says which).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${VCD_CONFORMANCE_BIN_DIR:-$root/.cache/bin}"
mkdir -p "$bin"

say() { printf '[vcd-conformance %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

sources="$(cd "$here" && cat go.mod go.sum ./*.go | cksum | cut -d' ' -f1)"
stamp="src=$sources go=$(go env GOVERSION)"
if [[ -x "$bin/vcd-conformance" && -f "$bin/STAMP.vcd-conformance" && "$(cat "$bin/STAMP.vcd-conformance")" == "$stamp" ]]; then
	say "up to date: $bin/vcd-conformance ($stamp)"
	exit 0
fi

sdk="$(cd "$here" && go list -m -f '{{.Version}}' github.com/vmware/go-vcloud-director/v3)"
say "building with go-vcloud-director $sdk (first build downloads and compiles the SDK: about a minute) ..."
started=$SECONDS
(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$bin/vcd-conformance.new" .) &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
	sleep 15
	kill -0 "$pid" 2>/dev/null && say "  still building ($((SECONDS - started))s)"
done
wait "$pid"
mv "$bin/vcd-conformance.new" "$bin/vcd-conformance"
echo "$stamp" >"$bin/STAMP.vcd-conformance"
say "built $bin/vcd-conformance in $((SECONDS - started))s"
