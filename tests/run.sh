#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the whole test suite once per Keras backend.
# The backend is fixed when Keras is imported, so each backend gets its own pytest process.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONHASHSEED=0
status=0
for backend in ${BACKENDS:-tensorflow jax}; do
  echo "=== pytest on KERAS_BACKEND=$backend ==="
  KERAS_BACKEND=$backend .venv/bin/python -m pytest -q -p no:cacheprovider "$@" || status=$?
done
exit $status
