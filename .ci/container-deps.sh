#!/usr/bin/env bash
# Installs podman (Debian's package) for the container image build and tests/it/container.rs,
# when it is missing. Nothing is pulled from a registry: the image is built FROM scratch.
set -euo pipefail
if command -v podman >/dev/null; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends podman
