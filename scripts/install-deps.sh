#!/usr/bin/env bash
# Installs what Capstan needs on Debian 12, idempotently: the apt packages listed in
# scripts/deps/*.txt (the Dockerfile installs runtime.txt from the same place), Node.js for
# the browser tests, and the browser tests' npm packages. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

wanted=$(grep -hv '^\s*#' scripts/deps/*.txt | sed '/^\s*$/d' | sort -u)
command -v node >/dev/null 2>&1 || wanted="$wanted nodejs npm"
missing=()
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing apt packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is missing: install a stable toolchain (>= 1.95) with rustup, then run this again." >&2
  exit 1
fi

if [ -f tests/browser/package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
