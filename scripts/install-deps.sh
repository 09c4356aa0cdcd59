#!/usr/bin/env bash
# Installs what Capstan needs on Debian 12, idempotently: the apt packages listed in
# scripts/deps/*.txt (the Dockerfile installs runtime.txt from the same place), Node.js for
# the browser tests, the browser tests' npm packages, and moto (an S3 server) for the storage
# tests. Safe to run again and again.
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

# moto (a real S3-compatible server, in memory) for the object-store tests: a Python venv at a
# fixed place that tests/common/moto.rs also knows. Skipped when the pinned version is there.
MOTO_VERSION=5.2.5
moto_venv="${CAPSTAN_TOOLS_DIR:-$HOME/.cache/capstan}/moto-venv"
moto_installed() {
  [ -x "$moto_venv/bin/moto_server" ] &&
    [ "$("$moto_venv/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null)" = "$MOTO_VERSION" ]
}
if ! moto_installed; then
  echo "installing moto[server]==$MOTO_VERSION into $moto_venv"
  python3 -m venv --clear "$moto_venv"
  "$moto_venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

if [ -f tests/browser/package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
