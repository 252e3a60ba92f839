#!/usr/bin/env bash
# Build the operator image from Containerfile without a container daemon or a registry.
#
#   scripts/image.sh [--binary PATH] [--tag NAME] [--smoke]
#
# 1. Gathers the build context in .image/context/rootfs/: the binary (default: a release
#    build, `cargo build --release --bin crossguard`), the shared libraries `ldd` says it
#    links (glibc, libgcc_s), the CA bundle, /etc/passwd and /etc/group naming the
#    non-root user 65532, an empty /tmp and /var/lib/crossguard.
# 2. Builds Containerfile from it with buildah (vfs storage, chroot isolation: no daemon,
#    no privileges beyond root in this machine), or docker/podman when present.
# 3. With --smoke: mounts the image's root filesystem and runs `make demo`'s whole flow
#    with the operator started from it (chroot, user 65532), so the image is proven to hold
#    everything the operator needs at run time.
# Prints the image size. Tag defaults to ghcr.io/crossguard/crossguard:<Cargo version>,
# the chart's default image (its appVersion).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/crossguard-target}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
binary= tag=ghcr.io/crossguard/crossguard:$version smoke=
while (($#)); do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    *) echo "usage: $0 [--binary PATH] [--tag NAME] [--smoke]" >&2; exit 2 ;;
  esac
done
say() { printf 'image: %s\n' "$*"; }
fail() { echo "image: FAILED: $*" >&2; exit 1; }

if [[ -z $binary ]]; then
  cargo build --release --bin crossguard
  binary=$CARGO_TARGET_DIR/release/crossguard
fi
[[ -x $binary ]] || fail "$binary is not an executable"

# --- the build context ----------------------------------------------------------
context=$repo/.image/context
rm -rf "$repo/.image"
rootfs=$context/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/var/lib/crossguard"
install -m 0755 "$binary" "$rootfs/usr/local/bin/crossguard"
# Symbols and debug info out: a third of the binary, needed by no one at run time.
strip "$rootfs/usr/local/bin/crossguard" 2>/dev/null || true
# Every shared object the binary loads, at the path the loader looks for it.
while read -r lib; do
  [[ -n $lib ]] || continue
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done < <(ldd "$binary" | sed -nE 's#.*=> (/[^ ]+) .*#\1#p; s#^[[:space:]]*(/[^ ]+) \(.*#\1#p')
[[ -s /etc/ssl/certs/ca-certificates.crt ]] || fail "no CA bundle at /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
mkdir -p "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp Containerfile "$context/"
say "context: $(du -sh "$rootfs" | cut -f1) in .image/context/rootfs ($(find "$rootfs" -type f | wc -l) files)"

# --- the build ------------------------------------------------------------------
if command -v buildah >/dev/null; then
  storage=(--storage-driver vfs --root "$repo/.image/storage" --runroot "$repo/.image/run")
  buildah "${storage[@]}" bud --isolation chroot --layers=false -q -f "$context/Containerfile" -t "$tag" "$context" >/dev/null
  size=$(buildah "${storage[@]}" images --format '{{.Size}}' "$tag")
  buildah "${storage[@]}" push -q "$tag" "oci:$repo/.image/oci:$version" >/dev/null
  say "built $tag with buildah ($size); OCI layout in .image/oci"
elif command -v docker >/dev/null || command -v podman >/dev/null; then
  tool=$(command -v docker || command -v podman)
  "$tool" build -f "$context/Containerfile" -t "$tag" "$context"
  say "built $tag with $tool"
  [[ -z $smoke ]] || fail "--smoke needs buildah (it mounts the image's root filesystem)"
  exit 0
else
  fail "no image builder: apt-get install buildah (or use docker/podman)"
fi

# --- the smoke test: the whole demo with the operator run from the image ---------
if [[ -n $smoke ]]; then
  container=$(buildah "${storage[@]}" from -q "$tag")
  mounted=$(buildah "${storage[@]}" mount "$container")
  cleanup() {
    buildah "${storage[@]}" umount "$container" >/dev/null 2>&1 || true
    buildah "${storage[@]}" rm "$container" >/dev/null 2>&1 || true
  }
  trap cleanup EXIT
  user=$(buildah "${storage[@]}" inspect --format '{{.OCIv1.Config.User}}' "$tag")
  entrypoint=$(buildah "${storage[@]}" inspect --format '{{index .OCIv1.Config.Entrypoint 0}}' "$tag")
  [[ $user == 65532:65532 ]] || fail "the image runs as '$user', not 65532"
  say "running make demo with the operator started from the image ($entrypoint as $user, chroot $mounted)"
  DEMO_OPERATOR_ROOTFS=$mounted DEMO_OPERATOR_ENTRYPOINT=$entrypoint DEMO_OPERATOR_USER=$user \
    "$repo/scripts/demo.sh" || fail "the demo failed with the operator from the image"
  say "smoke test passed: the operator from the image reconciled the whole demo"
fi
