#!/usr/bin/env bash
# Installs the system packages the tests need beyond Rust and Go, when they are missing. One `need` line per
# tool: the command that shows it is there, and the Debian packages that bring it.
# Debian or Ubuntu only; as root it uses apt-get directly, otherwise sudo if there is one.
set -euo pipefail

missing=()
need() { # COMMAND PACKAGE...
	command -v "$1" >/dev/null 2>&1 || missing+=("${@:2}")
}

# Argo CD runs its health checks in Lua 5.1; the GitOps tests run the same scripts with it.
need lua5.1 lua5.1
# The dashboards' queries run against a real Prometheus; promtool checks and unit-tests the alert rules.
need prometheus prometheus
need promtool prometheus
# The invoice rendering test reads the PDF's text and renders its first page to PNG.
need pdftotext poppler-utils
need pdftoppm poppler-utils
# The Flux test serves a Git repository on loopback with git http-backend (part of Debian's git).
need git git
# Request Tracker 5 with SQLite and its standalone web server: the support-request tests run a real RT.
# dbconfig-no-thanks keeps the packaging from creating a database of its own (the tests make theirs);
# msmtp-mta provides the mail transport RT's packages require without running a daemon; w3m silences a
# warning at every RT start.
need /usr/share/request-tracker5/libexec/rt-server request-tracker5 rt5-db-sqlite rt5-standalone dbconfig-no-thanks msmtp-mta w3m
# The in-cluster tests build the operator's image without a daemon (buildah, from scratch; busybox-static makes
# the node's pause image) and run a real node: containerd with runc, the CNI bridge plugins, and nftables for
# kube-proxy's Service rules.
need buildah buildah
need containerd containerd
need runc runc
need busybox busybox-static
need /usr/lib/cni/bridge containernetworking-plugins
need nft nftables

[[ ${#missing[@]} -eq 0 ]] && exit 0

say() { printf '[deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
if [[ $(id -u) -eq 0 ]]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	say "missing: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	say "missing: ${missing[*]}; this script installs them with apt-get only, install them with your package manager"
	exit 1
fi
say "installing ${missing[*]} from the distribution's packages"
if [[ " ${missing[*]} " == *" request-tracker5 "* ]]; then
	# Answers RT's install questions up front so that the install asks nothing.
	"${sudo[@]}" debconf-set-selections <<-EOF
		request-tracker5 request-tracker5/rtname string navigator.localhost
		request-tracker5 request-tracker5/correspondaddress string rt@navigator.localhost
		request-tracker5 request-tracker5/commentaddress string rt-comment@navigator.localhost
		request-tracker5 request-tracker5/install-cronjobs boolean false
		request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true
	EOF
fi
started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
# Another install running at the same time holds dpkg's lock: wait for it rather than fail.
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600)
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
say "installed ${missing[*]} in $((SECONDS - started)) s"
