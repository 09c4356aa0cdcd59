#!/usr/bin/env bash
# Second command: install what is needed and run the whole test suite (lint, unit,
# integration, end-to-end with real WebRTC peers, browser tests in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

export RUST_BACKTRACE=1
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

if [ -f tests/browser/package.json ]; then
  bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/capstan"
  (cd tests/browser && CAPSTAN_BIN="$bin" node --test)
fi
