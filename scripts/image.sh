#!/usr/bin/env bash
# Builds the operator's OCI image without a Docker daemon and without pulling a base image: buildah (vfs
# storage under .cache/image, no system state) from scratch, holding the release binary, the shared libraries
# `ldd` says it loads, CA certificates and a passwd entry for the unprivileged user 65532. Entrypoint, user and
# port are the Dockerfile's. Writes .cache/image/navigator-<version>.oci.tar (named like the chart's default
# image) and prints its digest and size.
#
# Why not a static binary as in the Dockerfile: the musl target is not installed here and rustup cannot
# download it (only package registries are reachable), so the glibc build is packed with exactly its libraries.
# Why CA certificates: kube-rs and reqwest verify TLS with the platform's roots (rustls-platform-verifier), read
# from /etc/ssl/certs, for endpoints with public certificates (the API server's CA comes from the pod's token
# volume).
#
# `scripts/image.sh pause` builds instead the pause image of the test node (tests/testenv/src/node.rs): the
# static busybox sleeping, since no registry image can be pulled here. It prints the archive's path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${NAVIGATOR_IMAGE_DIR:-$root/.cache/image}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
say() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for tool in buildah ldd; do
	command -v "$tool" >/dev/null || { say "$tool is missing: run scripts/deps.sh (make deps)"; exit 1; }
done
mkdir -p "$out"
# buildah's own storage and policy, under the cache folder: nothing outside it is read or written.
buildah=(buildah --root "$out/storage" --runroot "$out/run" --storage-driver vfs)
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$out/policy.json"

# pack ROOTFS IMAGE ARCHIVE CONFIG-ARGS...: an image of ROOTFS's files with that config, as an OCI archive.
pack() {
	local rootfs="$1" image="$2" archive="$3"
	shift 3
	local container
	container="$("${buildah[@]}" from scratch)"
	"${buildah[@]}" copy "$container" "$rootfs" / >/dev/null
	"${buildah[@]}" config "$@" "$container"
	# A fixed timestamp: the same files give the same digest.
	"${buildah[@]}" commit --quiet --rm --timestamp 0 --format oci "$container" "$image" >/dev/null
	rm -f "$archive"
	"${buildah[@]}" push --quiet --signature-policy "$out/policy.json" --digestfile "$archive.digest" \
		"$image" "oci-archive:$archive:$image"
	"${buildah[@]}" rmi --force "$image" >/dev/null 2>&1 || true
}

if [[ "${1:-}" == "pause" ]]; then
	busybox="$(command -v busybox)" || { say "busybox is missing: run scripts/deps.sh (make deps)"; exit 1; }
	archive="$out/pause.oci.tar"
	stamp="$(cksum <"$busybox" | cut -d' ' -f1)"
	if [[ ! -f "$archive" || "$(cat "$archive.stamp" 2>/dev/null)" != "$stamp" ]]; then
		rootfs="$out/pause-rootfs"
		rm -rf "$rootfs"
		mkdir -p "$rootfs/bin"
		cp -L "$busybox" "$rootfs/bin/busybox"
		# A sandbox only holds the pod's namespaces; CRI stops it with SIGKILL.
		pack "$rootfs" navigator.local/pause:busybox "$archive" \
			--entrypoint '["/bin/busybox","sleep","2147483647"]' --user 65535:65535
		rm -rf "$rootfs"
		echo "$stamp" >"$archive.stamp"
	fi
	echo "$archive"
	exit 0
fi

image="${NAVIGATOR_IMAGE:-ghcr.io/navigator-operator/navigator:$version}"
archive="$out/navigator-$version.oci.tar"
started=$SECONDS
say "building the release binary ..."
# Run from a test, cargo's variables for that test are set; build scripts that watch them (ring's) would
# then rebuild, and again at the next build from a shell.
for var in $(compgen -e); do
	case "$var" in CARGO_PKG_* | CARGO_MANIFEST_* | CARGO_CRATE_NAME | CARGO_BIN_* | CARGO_TARGET_TMPDIR | CARGO_PRIMARY_PACKAGE | OUT_DIR) unset "$var" ;; esac
done
(cd "$root" && cargo build --release --locked --bin navigator)
# Cargo's target folder, which CARGO_TARGET_DIR or a config may move away from the repository.
target="$(cd "$root" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
binary="$target/release/navigator"

rootfs="$out/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/home/nonroot"
cp "$binary" "$rootfs/navigator"
# Symbols only serve debuggers; panics still name their location.
if command -v strip >/dev/null; then strip --strip-unneeded "$rootfs/navigator"; fi
# Every library the dynamic loader maps, at the path it looks for it (ld-linux's own path is absolute).
while read -r lib; do
	mkdir -p "$rootfs$(dirname "$lib")"
	cp -L "$lib" "$rootfs$lib"
done < <(ldd "$binary" | grep -o '/[^ ]*')
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot"

# The Dockerfile's USER, EXPOSE, ENTRYPOINT and CMD; the environment distroless sets.
pack "$rootfs" "$image" "$archive" \
	--user 65532:65532 --port 8080 \
	--entrypoint '["/navigator"]' --cmd run \
	--env PATH=/usr/local/bin:/usr/bin:/bin --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
	--label org.opencontainers.image.title=navigator --label "org.opencontainers.image.version=$version"
rm -rf "$rootfs"

digest="$(cat "$archive.digest")"
size="$(stat -c %s "$archive")"
say "built $image in $((SECONDS - started)) s"
echo "image:   $image"
echo "archive: $archive"
echo "digest:  $digest"
echo "size:    $size bytes ($((size / 1024 / 1024)) MiB archive)"
