#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test of the workspace (unit, property,
# vector, interop, server and end-to-end crash/tamper tests, which spawn the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."
# The syslog tests drive util-linux `logger` (Debian: bsdutils); the OTLP test installs its
# Python SDK itself (scripts/otel-env.sh).
if ! command -v logger >/dev/null 2>&1; then
  echo "test.sh: installing util-linux logger (bsdutils) for the syslog tests" >&2
  apt-get install -y -q bsdutils >&2 || { apt-get update -q >&2 && apt-get install -y -q bsdutils >&2; }
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked --bins
cargo test --workspace --locked
