#!/usr/bin/env bash
# Creates (once) target/otel-env, a Python virtual environment with the official
# OpenTelemetry Python SDK and its OTLP/HTTP exporter from PyPI, which the OTLP receiver's
# end-to-end test drives. Prints the environment's python on stdout. Idempotent: a complete
# environment (marked by .ready, written last) is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir="${OTEL_ENV_DIR:-target/otel-env}"
# Pinned so that the test exercises a known exporter; newer versions speak the same OTLP.
packages=(
  "opentelemetry-api==1.45.2"
  "opentelemetry-sdk==1.45.2"
  "opentelemetry-exporter-otlp-proto-http==1.45.2"
)
if [[ -f "$env_dir/.ready" && "$(cat "$env_dir/.ready")" == "${packages[*]}" ]]; then
  echo "$PWD/$env_dir/bin/python"
  exit 0
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "otel-env: $python not found; install Python 3.9 or later" >&2
  exit 2
fi
rm -rf "$env_dir"
mkdir -p "$(dirname "$env_dir")"
if ! "$python" -m venv "$env_dir" >&2; then
  echo "otel-env: python -m venv failed; on Debian, apt-get install python3-venv" >&2
  exit 2
fi
"$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2
echo "${packages[*]}" > "$env_dir/.ready"
echo "$PWD/$env_dir/bin/python"
