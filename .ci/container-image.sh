#!/usr/bin/env bash
# Builds the container image from the Containerfile with podman: FROM scratch, nothing pulled.
#
# Usage: bash .ci/container-image.sh [TAG]          (default tag localhost/git-push-tracker:latest)
#        BIN=path/to/static/binary bash .ci/container-image.sh [TAG]   (skip the cargo build)
#
# The build context is a fresh directory holding only the static binary and an empty
# volume/data/ (the volume's starting point), so nothing else of the checkout ends up in the
# image or is sent to the builder.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-musl
TAG="${1:-localhost/git-push-tracker:latest}"

if [[ -z "${BIN:-}" ]]; then
    cargo build --release --locked --target "$TARGET"
    BIN="${CARGO_TARGET_DIR:-target}/$TARGET/release/git-push-tracker"
fi
[[ -x "$BIN" ]] || { echo "container-image: no binary at $BIN" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$BIN" "$ctx/git-push-tracker"
# /data's mode comes from here (the Containerfile says why): only its owner may enter it.
mkdir "$ctx/volume"
mkdir -m 0700 "$ctx/volume/data"
# The docker format, because the OCI image format has no HEALTHCHECK.
podman build --quiet --pull=never --format docker -f Containerfile -t "$TAG" "$ctx"
echo "built $TAG"
