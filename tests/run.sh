#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the whole test suite on the TensorFlow and the JAX backend.
# The backend is fixed when Keras is imported, so each backend gets its own pytest process. The first backend
# runs every test; the others skip the tests marked `backend_free` (they do not touch a backend: argument
# checks, image decoding, manifests, splits, the import layers). The backends run side by side (most tests are
# bound by Python and process start-up, not by both cores); each one's output is printed when it ends.
#   BACKENDS="jax" bash tests/run.sh        one backend (it then runs everything)
#   SEQUENTIAL=1 bash tests/run.sh          one backend after the other
#   bash tests/run.sh tests/test_cli.py     extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONHASHSEED=0
logs=$(mktemp -d)
read -r -a backends <<< "${BACKENDS:-tensorflow jax}"
pids=()
for i in "${!backends[@]}"; do
  backend=${backends[$i]}
  select=()
  [ "$i" -gt 0 ] && select=(-m "not backend_free")
  run() {  # each backend its own temporary folder: side by side, neither cleans up the other's
    KERAS_BACKEND=$1 .venv/bin/python -m pytest -q -p no:cacheprovider --basetemp="$logs/tmp-$1" "${@:2}" \
      > "$logs/$1.log" 2>&1
  }
  if [ -n "${SEQUENTIAL:-}" ]; then
    run "$backend" "${select[@]}" "$@" && echo 0 > "$logs/$backend.rc" || echo $? > "$logs/$backend.rc"
  else
    ( run "$backend" "${select[@]}" "$@" && echo 0 > "$logs/$backend.rc" || echo $? > "$logs/$backend.rc" ) &
    pids+=($!)
  fi
done
[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
status=0
for backend in "${backends[@]}"; do
  echo "=== pytest on KERAS_BACKEND=$backend$([ "$backend" != "${backends[0]}" ] && echo ' (backend_free tests ran on '"${backends[0]}"')') ==="
  cat "$logs/$backend.log"
  rc=$(cat "$logs/$backend.rc")
  [ "$rc" -ne 0 ] && status=$rc
done
rm -rf "$logs"
exit $status
