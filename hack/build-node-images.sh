#!/usr/bin/env bash
# Builds the node tier's images without Docker or a registry, into a cache outside
# the clone keyed by their inputs:
#   base:     Debian bookworm's python3 + pip (mmdebstrap), the Dockerfile's build arg
#   pause:    the pod sandbox image, busybox-static sleeping
#   operator: the project's Dockerfile, built by buildah FROM the local base
# Each is saved as a docker-archive that `ctr images import` loads. Prints
# KEY=VALUE lines (BASE_IMAGE, PAUSE_IMAGE, OPERATOR_IMAGE and their *_ARCHIVE).
# Usage: hack/build-node-images.sh   (needs root and hack/install-node-deps.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${CLOUDINFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudinfer}"
CACHE="$CACHE_ROOT/node-images"
SUITE=bookworm
BASE_PACKAGES=python3,python3-pip,ca-certificates
# buildah's default runtime (crun) fails on cgroup v1 hybrid hosts; runc works.
BUILDAH=(buildah --root "$CACHE/buildah/root" --runroot "$CACHE/buildah/run" --storage-driver vfs)

log() { printf '[node-images] %s\n' "$*" >&2; }
die() { printf '[node-images] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" == 0 ]] || die "building images with buildah's chroot isolation needs root."
for tool in mmdebstrap buildah runc; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing; run hack/install-node-deps.sh."
done
mkdir -p "$CACHE"

key() { sha256sum | cut -c1-16; }

# An image is ready when its archive exists and buildah's store holds it (the store
# is a cache too: reload it from the archive if it was cleared).
ensure_loaded() {
  local name="$1" archive="$2"
  "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1 \
    || "${BUILDAH[@]}" pull --quiet "docker-archive:$archive" >/dev/null
}

save() {
  local name="$1" archive="$2"
  rm -f "$archive.tmp"
  "${BUILDAH[@]}" push --quiet "$name" "docker-archive:$archive.tmp:$name" >&2
  mv "$archive.tmp" "$archive"
}

# -- base -----------------------------------------------------------------------
# The host's apt sources name the mirror, so no registry host is written here.
apt_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
    [[ -s "$f" ]] && { echo "$f"; return; }
  done
  die "no apt sources found (/etc/apt/sources.list or sources.list.d/*.sources)."
}
base_key=$(printf '%s\n' "$SUITE" "$BASE_PACKAGES" "v1" | key)
BASE_IMAGE="localhost/cloudinfer-base:$base_key"
BASE_ARCHIVE="$CACHE/base-$base_key.tar"
if [[ ! -f "$BASE_ARCHIVE" ]]; then
  start=$(date +%s)
  log "building the base image ($SUITE: $BASE_PACKAGES) with mmdebstrap; about 3 minutes"
  rootfs="$CACHE/base-$base_key.rootfs.tar"
  # Debian marks its python EXTERNALLY-MANAGED (PEP 668); this image is the
  # Dockerfile's stand-in for python:slim, where pip installs into the system.
  mmdebstrap --variant=apt --format=tar --include="$BASE_PACKAGES" \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    --customize-hook='test -x "$1"/usr/bin/pip' \
    "$SUITE" "$rootfs.tmp" "$(apt_sources)" >&2
  mv "$rootfs.tmp" "$rootfs"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add "$ctr" "$rootfs" / >&2
  "${BUILDAH[@]}" config --cmd /usr/bin/python3 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
  save "$BASE_IMAGE" "$BASE_ARCHIVE"
  rm -f "$rootfs"
  log "base image built in $(( $(date +%s) - start ))s"
fi
ensure_loaded "$BASE_IMAGE" "$BASE_ARCHIVE"

# -- pause ----------------------------------------------------------------------
busybox=$(command -v busybox) || die "busybox is missing; run hack/install-node-deps.sh."
pause_key=$( { sha256sum "$busybox"; echo v1; } | key)
PAUSE_IMAGE="localhost/cloudinfer-pause:$pause_key"
PAUSE_ARCHIVE="$CACHE/pause-$pause_key.tar"
if [[ ! -f "$PAUSE_ARCHIVE" ]]; then
  log "building the pause image from $busybox"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$ctr" "$busybox" /busybox >&2
  "${BUILDAH[@]}" config --entrypoint '["/busybox", "sleep", "2147483647"]' --user 65535:65535 "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$PAUSE_IMAGE" >/dev/null
  save "$PAUSE_IMAGE" "$PAUSE_ARCHIVE"
fi

# -- operator -------------------------------------------------------------------
# Keyed by the build context the Dockerfile sees (.dockerignore allows these) and the base.
operator_key=$(cd "$ROOT" && {
  echo "$base_key"
  find Dockerfile .dockerignore pyproject.toml constraints.txt README.md operator -type f \
    -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum
} | key)
OPERATOR_IMAGE="localhost/cloudinfer-operator:$operator_key"
OPERATOR_ARCHIVE="$CACHE/operator-$operator_key.tar"
if [[ ! -f "$OPERATOR_ARCHIVE" ]]; then
  start=$(date +%s)
  log "building $OPERATOR_IMAGE from the Dockerfile with buildah"
  # pip in the build stage needs a package index: use the host's network and, when the
  # host has them, its pip configuration and CA bundle (a proxy's CA, a mirror).
  volumes=()
  if [[ -f /etc/pip.conf ]]; then volumes+=(--volume /etc/pip.conf:/etc/pip.conf:ro); fi
  for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [[ -n "$ca" && -f "$ca" ]]; then
      volumes+=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
      break
    fi
  done
  build_args=(--build-arg "PYTHON_IMAGE=$BASE_IMAGE")
  for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST HTTPS_PROXY HTTP_PROXY NO_PROXY; do
    if [[ -n "${!var:-}" ]]; then build_args+=(--build-arg "$var=${!var}"); fi
  done
  # No --layers: buildah 1.28 cannot bind-mount (RUN --mount from=build) a stage that
  # came whole from its layer cache. The image itself is cached by its inputs' key.
  "${BUILDAH[@]}" bud --pull-never --isolation chroot --network host \
    --runtime "$(command -v runc)" "${volumes[@]}" "${build_args[@]}" \
    -t "$OPERATOR_IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >&2
  save "$OPERATOR_IMAGE" "$OPERATOR_ARCHIVE"
  # Older operator images are superseded by this one. buildah's vfs store keeps a full
  # copy of every layer, so drop the old images, build stages and working containers too.
  find "$CACHE" -maxdepth 1 -name 'operator-*.tar' ! -name "operator-$operator_key.tar" -delete
  "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
  "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/cloudinfer-operator:' \
    | grep -vx "$OPERATOR_IMAGE" | xargs -r "${BUILDAH[@]}" rmi >/dev/null 2>&1 || true
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
  log "operator image built in $(( $(date +%s) - start ))s"
fi

printf 'BASE_IMAGE=%s\nBASE_ARCHIVE=%s\n' "$BASE_IMAGE" "$BASE_ARCHIVE"
printf 'PAUSE_IMAGE=%s\nPAUSE_ARCHIVE=%s\n' "$PAUSE_IMAGE" "$PAUSE_ARCHIVE"
printf 'OPERATOR_IMAGE=%s\nOPERATOR_ARCHIVE=%s\n' "$OPERATOR_IMAGE" "$OPERATOR_ARCHIVE"
