#!/usr/bin/env bash
# A Python virtual environment for tools/verify_bundle.py, made once under the target
# directory (target/pyenv) with a pinned `cryptography`, the verifier's only dependency
# outside the standard library. Prints the path of its python on stdout; everything else goes
# to stderr. Safe to run concurrently (flock) and cheap when the environment is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
CRYPTOGRAPHY=48.0.0
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
env="$target/pyenv"
py="$env/bin/python"
exec 9>"$target/pyenv.lock"
flock 9
if ! "$py" -c "import sys, cryptography; sys.exit(cryptography.__version__ != '$CRYPTOGRAPHY')" 2>/dev/null; then
  echo "python-env: creating $env with cryptography==$CRYPTOGRAPHY" >&2
  python3 -m venv --clear "$env" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "cryptography==$CRYPTOGRAPHY" >&2
fi
echo "$py"
