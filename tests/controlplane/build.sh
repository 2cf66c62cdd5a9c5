#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kubectl), helm and kstatus from
# their upstream Go modules at the versions pinned in this folder's go.mod files. Binaries land in
# $NAVIGATOR_BIN (default: .cache/bin at the repository root) and are reused while the stamp matches.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${NAVIGATOR_BIN:-$root/.cache/bin}"
mkdir -p "$bin"

kube_version="$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$(cd "$here" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
helm_version="$(cd "$here/helm" && go list -m -f '{{.Version}}' helm.sh/helm/v3)"
stamp="kubernetes=$kube_version etcd=$etcd_version helm=$helm_version go=$(go env GOVERSION)"

say() { printf '[controlplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Prints dots while a long build runs, so CI logs show it is alive.
build_with_progress() {
	local what="$1"
	shift
	local started=$SECONDS
	say "building $what ..."
	"$@" &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 30
		kill -0 "$pid" 2>/dev/null && say "  still building $what ($((SECONDS - started))s)"
	done
	wait "$pid"
	say "built $what in $((SECONDS - started))s"
}

# kstatus (the upstream health rules Flux applies, for the GitOps tests): small, so it has its own stamp and is
# rebuilt without touching the control plane binaries.
kstatus_version="$(cd "$here/kstatus" && go list -m -f '{{.Version}}' sigs.k8s.io/cli-utils)"
kstatus_stamp="cli-utils=$kstatus_version go=$(go env GOVERSION) src=$(cat "$here/kstatus/main.go" "$here/kstatus/go.sum" | cksum | cut -d' ' -f1)"
if [[ ! -x "$bin/kstatus" || ! -f "$bin/STAMP.kstatus" || "$(cat "$bin/STAMP.kstatus")" != "$kstatus_stamp" ]]; then
	(cd "$here/kstatus" && CGO_ENABLED=0 build_with_progress "kstatus (cli-utils $kstatus_version)" go build -trimpath -o "$bin/kstatus" .)
	echo "$kstatus_stamp" >"$bin/STAMP.kstatus"
fi

minor="${kube_version#v1.}"
minor="${minor%%.*}"
version_flags="-X k8s.io/component-base/version.gitVersion=$kube_version"
version_flags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
version_flags+=" -X k8s.io/component-base/version.gitTreeState=clean"
version_flags+=" -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
version_flags+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

# `build.sh --node` also builds what a node needs (kubelet, kube-proxy, kube-scheduler) from the same module,
# with a stamp of their own: only the in-cluster tests and `make cluster NODE=1` use them.
if [[ "${1:-}" == "--node" ]]; then
	node_stamp="kubernetes=$kube_version go=$(go env GOVERSION)"
	if [[ ! -f "$bin/STAMP.node" || "$(cat "$bin/STAMP.node")" != "$node_stamp" ]] ||
		! for b in kubelet kube-proxy kube-scheduler; do [[ -x "$bin/$b" ]] || exit 1; done; then
		rm -f "$bin/STAMP.node"
		(cd "$here" && CGO_ENABLED=0 build_with_progress "kubelet, kube-proxy and kube-scheduler $kube_version" \
			go build -trimpath -ldflags "-s -w $version_flags" -o "$bin/" \
			k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kube-scheduler)
		echo "$node_stamp" >"$bin/STAMP.node"
	fi
fi

if [[ -f "$bin/STAMP" && "$(cat "$bin/STAMP")" == "$stamp" ]] &&
	for b in etcd kube-apiserver kube-controller-manager kubectl helm; do [[ -x "$bin/$b" ]] || exit 1; done; then
	say "up to date in $bin ($stamp)"
	exit 0
fi
rm -f "$bin/STAMP"

export CGO_ENABLED=0
cd "$here"
build_with_progress "etcd $etcd_version" go build -trimpath -o "$bin/etcd" ./etcd
build_with_progress "kube-apiserver, kube-controller-manager and kubectl $kube_version" \
	go build -trimpath -ldflags "-s -w $version_flags" -o "$bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
cd "$here/helm"
build_with_progress "helm $helm_version" go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" -o "$bin/helm" helm.sh/helm/v3/cmd/helm

echo "$stamp" >"$bin/STAMP"
say "done: $bin ($stamp)"
