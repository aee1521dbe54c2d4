#!/usr/bin/env bash
# Runs every test of the workspace against real services, installing what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo nextest run --workspace --all-targets --no-fail-fast "$@"
