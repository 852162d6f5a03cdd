#!/usr/bin/env bash
# Debian packages some tests need (browsers, databases). Installs only what is missing; as root.
set -euo pipefail
packages=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || packages+=("$pkg")
done
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${packages[*]} (run as root or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
