#!/usr/bin/env bash
# Installs the system packages the tests need beyond Rust and Go, when they are missing: the Lua 5.1
# interpreter (Argo CD runs its health checks in Lua 5.1; the GitOps tests run the same scripts with it).
# Debian or Ubuntu only; as root it uses apt-get directly, otherwise sudo if there is one.
set -euo pipefail

missing=()
command -v lua5.1 >/dev/null 2>&1 || missing+=(lua5.1)
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
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
say "installed: $(lua5.1 -v 2>&1)"
