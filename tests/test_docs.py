"""The documentation stays true to the code: the generated CLI and Python reference pages, and the README's links.

`mkdocs build --strict` (.ci/run) checks the site's own links and docstrings; these tests check what it cannot:
that docs/reference/cli.md is what `keras-transfer --help` and every subcommand's `--help` print today, and that
docs/reference/python.md documents exactly `keras_transfer.__all__`.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

import keras_transfer

pytestmark = pytest.mark.backend_free

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEPARATOR = "=== keras-transfer help of:"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen_cli():
    saved = os.environ.get("COLUMNS")
    yield _load("gen_cli")
    if saved is None:  # help_texts() fixes the width; leave the environment as it was
        os.environ.pop("COLUMNS", None)
    else:
        os.environ["COLUMNS"] = saved


def _words(text):
    """The text as a sequence of words: argparse wraps to the terminal and to Python's own layout rules, which
    may differ between the Python that wrote the page and the one testing it; every flag and word must match."""
    return text.split()


def test_cli_reference_is_generated_from_the_parser(gen_cli):
    page = gen_cli.PAGE.read_text()
    assert _words(page) == _words(gen_cli.render(gen_cli.help_texts())), (
        "docs/reference/cli.md is out of date with keras_transfer/cli.py: run `python docs/gen_cli.py`")


@pytest.mark.first_backend  # 12 s: the second process ended 27 s after the first in the CI of 495152e
def test_cli_reference_matches_the_command(gen_cli):
    """What the page shows is what the installed command prints: `--help` and each subcommand's, one process."""
    texts = gen_cli.help_texts()
    assert ("train",) in texts and ("predict",) in texts and len(texts) >= 7  # the top level and every subcommand
    calls = [list(argv) + ["--help"] for argv in texts]
    script = ("import sys, keras_transfer_launcher\n"
              f"for argv in {calls!r}:\n"
              f"    print({SEPARATOR!r}, ' '.join(argv[:-1]), flush=True)\n"
              "    try:\n        keras_transfer_launcher.main(argv)\n"
              "    except SystemExit as stop:\n        assert stop.code in (0, None), stop.code\n"
              "    sys.stdout.flush()\n")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, COLUMNS=gen_cli.COLUMNS, PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = {}
    for chunk in done.stdout.split(SEPARATOR)[1:]:
        argv, _, text = chunk.partition("\n")
        printed[tuple(argv.split())] = text
    page = gen_cli.PAGE.read_text()
    assert set(printed) == set(texts)
    for argv, text in printed.items():
        command = f"keras-transfer {' '.join(argv)} --help".replace("  ", " ")
        assert text.rstrip() == texts[argv].rstrip(), f"`{command}` differs from the parser's help"
        assert " ".join(_words(f"```text\n{text}\n```")) in " ".join(_words(page)), f"the page lacks `{command}`"


def test_python_reference_documents_exactly_all():
    gen_api = _load("gen_api")
    names = [name for name, _ in gen_api.public_names()]
    assert names == list(keras_transfer.__all__)
    page = gen_api.PAGE.read_text()
    assert page == gen_api.render(gen_api.public_names()), (
        "docs/reference/python.md is out of date with keras_transfer.__all__: run `python docs/gen_api.py`")
    assert sorted(re.findall(r"^::: keras_transfer\.(\S+)$", page, re.M)) == sorted(keras_transfer.__all__)


def test_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10_500, "the README is a front page: details go to docs/"
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert "docs/results.md" in local and "docs/reference/cli.md" in local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
    assert 'pip install -q -e ".[demo]" && .venv/bin/keras-transfer demo' in readme
    assert "bash tests/run.sh" in readme
