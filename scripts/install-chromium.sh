#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser tests
# (dashboard/browser_test.go). Does nothing when a chromium is already on
# PATH. Needs root (or sudo) and the Debian package archive.
set -euo pipefail
for b in chromium chromium-browser; do
  if command -v "$b" >/dev/null 2>&1; then
    echo "install-chromium: $(command -v "$b") is there: $("$b" --version 2>/dev/null || true)"
    exit 0
  fi
done
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "install-chromium: installed $(chromium --version)"
