#!/usr/bin/env bash
# Usage: .ci/apt-install.sh CMD PKG...
# Installs Debian's PKG... when CMD (a name on PATH, or an absolute path) is not an executable
# already: strace for tests/it/durability.rs, podman for the container image and
# tests/it/container.rs (built FROM scratch, so nothing is pulled from a registry), Chromium and
# chromedriver for tests/it/browser.rs.
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: $0 CMD PKG..." >&2
  exit 2
fi
CMD="$1"
shift
if command -v "$CMD" >/dev/null; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@"
