#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test of the workspace (unit, property,
# vector, interop, server and end-to-end crash/tamper tests, which spawn the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked --bins
cargo test --workspace --locked
