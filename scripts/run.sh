#!/usr/bin/env bash
# First command: install what is needed, build, and run the server with embedded defaults
# (local disk under ./data, dev tokens) on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bin capstan
exec target/release/capstan serve --dev "$@"
