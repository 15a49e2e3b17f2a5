#!/usr/bin/env bash
# Installs strace for tests/durability.rs, which traces the server's syncs and answers.
set -euo pipefail
if command -v strace >/dev/null; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends strace
