#!/usr/bin/env bash
# Builds the docs site into site/ with `mkdocs build --strict` (a broken link, a page missing from the nav or a
# docstring naming a parameter its function lacks fails it). mkdocstrings reads the code without importing it,
# so only the `docs` extra's packages are installed, into their own .venv-docs (seconds, not TensorFlow).
#   bash docs/build.sh            build once (CI: .ci/run)
#   bash docs/build.sh serve      preview at http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-docs/bin/python ]; then
  "$PY" -m venv .venv-docs
fi
# The requirements are the `docs` extra in pyproject.toml, read here so that they are written down once
.venv-docs/bin/python - > .venv-docs/docs-requirements.txt <<'PY'
import pathlib, re
block = re.search(r"^docs = \[(.*?)\]\s*$", pathlib.Path("pyproject.toml").read_text(), re.M | re.S).group(1)
print("\n".join(re.findall(r'"([^"]+)"', block)))
PY
# uv when it installs (faster, as in tests/run.sh), pip otherwise
if .venv-docs/bin/python -m pip install -q uv; then
  .venv-docs/bin/uv pip install -q --python .venv-docs/bin/python -r .venv-docs/docs-requirements.txt
else
  .venv-docs/bin/python -m pip install -q --upgrade pip
  .venv-docs/bin/python -m pip install -q -r .venv-docs/docs-requirements.txt
fi
export NO_MKDOCS_2_WARNING=1
if [ "${1:-build}" = serve ]; then
  exec .venv-docs/bin/mkdocs serve
fi
.venv-docs/bin/mkdocs build --strict
