#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their upstream Go modules at the versions pinned
# in this folder's go.mod (a wrapper module: the controllers' own go.mod files have replace lines that
# `go install` refuses, so this module repeats them and builds the controllers as tools). Binaries land in
# $NAVIGATOR_BIN (default: .cache/bin at the repository root) and are reused while the stamp matches.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${NAVIGATOR_BIN:-$root/.cache/bin}"
mkdir -p "$bin"
cd "$here"

source_version="$(go list -m -f '{{.Version}}' github.com/fluxcd/source-controller)"
kustomize_version="$(go list -m -f '{{.Version}}' github.com/fluxcd/kustomize-controller)"
stamp="source-controller=$source_version kustomize-controller=$kustomize_version go=$(go env GOVERSION) sum=$(cksum <go.sum | cut -d' ' -f1)"

say() { printf '[flux %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -f "$bin/STAMP.flux" && "$(cat "$bin/STAMP.flux")" == "$stamp" && -x "$bin/source-controller" && -x "$bin/kustomize-controller" ]]; then
	say "up to date in $bin ($stamp)"
	exit 0
fi
rm -f "$bin/STAMP.flux"

# Prints a line every 30 s while a long build runs, so CI logs show it is alive.
started=$SECONDS
say "building source-controller $source_version and kustomize-controller $kustomize_version ..."
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/" \
	github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
	sleep 30
	kill -0 "$pid" 2>/dev/null && say "  still building the Flux controllers ($((SECONDS - started))s)"
done
wait "$pid"
say "built the Flux controllers in $((SECONDS - started))s"

echo "$stamp" >"$bin/STAMP.flux"
say "done: $bin ($stamp)"
