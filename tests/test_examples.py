"""Every script in examples/ runs, as `python examples/<script> args` under the current backend, on a tiny image
folder (the regression and multi-label scripts: on 32 real digit images or tiles they write themselves; the text
script: on 18 real sentences with the tiny random BERT of `conftest.tiny_bert_folder`, as the image scripts take
`tinyvgg`, the two-block VGG-layout test backbone the driver registers (tests/tiny_backbone.py), with random
weights; the real MiniLM trains in test_text_runs). `feature_extraction.py` keeps a `keras.applications`
network (VGG16, random weights), so one example still builds, preprocesses and trains a real registry backbone.
The scripts share one process (tests/examples_driver.py runs them one after the other, each with its own argv,
working directory and fresh Keras state), and each script's test reports its own outcome. That process's backend is
picked by `KERAS_BACKEND` alone, as a user switches it: tests/run.sh's TensorFlow and JAX processes each start one,
so the same user scripts (`feature_extraction.py`: a `keras.applications` network, `compile_model`, plain
`model.fit`) train under both backends, each in its own interpreter.

`two_phase_fine_tune.py` writes `best.keras` into its `--out`; `export_saved_model.py` exports that file, as the
examples' docstrings chain them. A script added to examples/ without an entry in `EXPECTED` fails here.
"""

import ast
import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from conftest import tiny_bert_folder

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
CLASSES = ("ant", "bee", "fly")
TINY = ["--backbone", "tinyvgg", "--weights", "none", "--input-size", "32", "--epochs", "1"]
APPLICATIONS = ["--backbone", "vgg16", "--weights", "none", "--input-size", "32", "--epochs", "1"]
# Beyond TINY, per script: the top one of tinyvgg's two blocks, and 20 range-test steps (100 take ~2.5 min on a
# loaded CPU under JAX).
SMALL = {"gradual_unfreezing.py": ["--blocks", "1"], "find_lr.py": ["--steps", "20"]}

# What each script must print (a fragment of each line named).
EXPECTED = {
    "feature_extraction.py": ["freeze 'head_only'", "validation: {", "'accuracy'"],
    "two_phase_fine_tune.py": ["freeze 'head_only'", "freeze 'top_blocks'", "backbone blocks trainable: block2;",
                               "validation: {"],
    "gradual_unfreezing.py": ["freeze 'top_blocks'", "backbone blocks trainable: block2;", "validation: {"],
    "cached_head.py": ["cached features: train (", "validation: {", "'accuracy'"],
    "export_saved_model.py": ["exported to ", "largest difference to the Keras model"],
    "find_lr.py": ["suggested learning rate: ", "plot written to ", "validation: {"],
    "lp_ft.py": ["linear probe: l2 ", "freeze 'top_blocks'", "validation: {"],
    "recipe_by_name.py": ["recipe 'auto' -> 'scratch'", "phase 'scratch': every layer", "validation: {"],
    "text_classifier.py": ["'sequence_length': 16", "phase 'head': the head fitted", "validation: {", "exported to "],
    "regression.py": ["freeze 'head_only'", "freeze 'top_blocks'", "target(s): MAE ", "R^2", "predicted: ["],
    "multilabel.py": ["label weights: {", "freeze 'top_blocks'", "thresholds: {", "micro F1", "mAP", "predicted: ["],
}
TASK_ARGS = ["--n", "32", *TINY, "--blocks", "1"]  # 32 digit images or tiles of the real digits
# Real sentences (the first lines of Python standard-library docstrings), 3 families x 6, for the text example.
TEXTS = {"maths": ["Return the square root of x.", "Return the sine of x (measured in radians).",
                   "Return the cosine of x (measured in radians).", "Return the natural logarithm of x.",
                   "Return the greatest common divisor of the integers.", "Return the factorial of n."],
         "network": ["Return the current host name.", "Create a new socket using the given address family.",
                     "Connect to a remote socket at address.", "Receive up to buffersize bytes from the socket.",
                     "Send a data string to the socket.", "Shut down the reading side of the socket."],
         "time": ["Return the current time in seconds since the Epoch.", "Return the current date and time.",
                  "Return a new date with the given year, month and day.", "Difference between two datetime values.",
                  "Return the number of days in the month.", "Delay execution for a given number of seconds."]}


DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples_driver.py")


def example_args(script):
    """The command-line arguments each example gets (run from the working directory of `workdir`)."""
    if script == "two_phase_fine_tune.py":
        return ["images", *TINY, "--blocks", "1", "--out", "run"]
    if script == "export_saved_model.py":  # the best.keras that two_phase_fine_tune.py wrote
        return [os.path.join("run", "best.keras"), "exported"]
    if script == "text_classifier.py":  # the tiny random BERT preset folder `example_runs` writes, not MiniLM
        return ["texts.csv", "--backbone", "tiny_bert", "--sequence-length", "16", "--out", "exported_text"]
    if script in ("regression.py", "multilabel.py"):
        return [script[:-3], *TASK_ARGS]
    if script == "feature_extraction.py":
        return ["images", *APPLICATIONS]
    return ["images", *TINY, *SMALL.get(script, [])]


def selected_scripts(session):
    """The scripts whose `test_example_runs` this pytest session runs, plus the ones they need, in run order."""
    wanted = {item.callspec.params["script"] for item in session.items
              if getattr(item, "originalname", None) == "test_example_runs"}
    if any(getattr(item, "originalname", None) == "test_the_examples_run_on_the_backend_the_environment_names"
           for item in session.items):
        wanted.add("feature_extraction.py")
    if "export_saved_model.py" in wanted:
        wanted.add("two_phase_fine_tune.py")
    # two_phase_fine_tune.py writes the best.keras that export_saved_model.py exports, so it runs first.
    return sorted(wanted & set(EXPECTED), key=lambda s: (s != "two_phase_fine_tune.py", s))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with `images/<class>/<i>.png`: 3 classes x 6 random 32 px images."""
    root = tmp_path_factory.mktemp("examples")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        os.makedirs(root / "images" / name)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "images" / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def example_runs(workdir, request):
    """Runs every selected example in ONE process under the current backend (tests/examples_driver.py: the
    scripts one after the other, each with its own argv, working directory and fresh Keras state), so Keras and
    the backend are imported once for all of them. Returns {script: result}; a script the process did not finish
    maps to a result whose `error` says where the process stopped."""
    with open(workdir / "texts.csv", "w", newline="") as f:
        csv.writer(f).writerows([("text", "label")] + [(t, k) for k, texts in TEXTS.items() for t in texts])
    scripts = selected_scripts(request.session)
    if "text_classifier.py" in scripts and not (workdir / "tiny_bert").is_dir():
        tiny_bert_folder(str(workdir / "tiny_bert"))  # MiniLM trains in test_text_runs
    plan = [{"script": os.path.join(EXAMPLES, s), "args": example_args(s), "cwd": str(workdir)} for s in scripts]
    with open(workdir / "plan.json", "w") as f:
        json.dump(plan, f)
    results = workdir / "results"
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    try:
        done = subprocess.run([sys.executable, DRIVER, str(workdir / "plan.json"), str(results)], env=env,
                              capture_output=True, text=True, timeout=600 + 300 * len(scripts))
        stopped = f"exit code {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    except subprocess.TimeoutExpired as timeout:
        stopped = f"timed out after {timeout.timeout} s"
    runs = {}
    for script in scripts:
        if (results / f"{script}.json").is_file():
            runs[script] = json.loads((results / f"{script}.json").read_text())
        else:
            where = "while running it" if (results / f"{script}.started").is_file() else "before it started"
            runs[script] = {"ok": False, "stdout": "", "stderr": "",
                            "error": f"the examples process stopped {where}, {stopped}"}
    return runs


def run_example(script, example_runs):
    """The stdout of `script`'s run; fails naming the script if it raised, exited non-zero or printed a traceback."""
    run = example_runs[script]
    assert run["ok"], f"{script} failed:\n{run['stdout'][-3000:]}\n{run['stderr'][-3000:]}\n{run['error']}"
    assert "Traceback" not in run["stderr"], f"{script} printed a traceback:\n{run['stderr'][-3000:]}"
    return run["stdout"]


def test_the_examples_run_on_the_backend_the_environment_names(example_runs):
    """`KERAS_BACKEND` in the examples process's environment (this process's backend) is the backend every script
    ran on: the environment variable, not a keras.json or an import order, picks it."""
    assert example_runs and {run.get("backend") for run in example_runs.values()} == {keras.backend.backend()}
    assert "'accuracy'" in run_example("feature_extraction.py", example_runs)  # vgg16 trained there


def test_every_example_has_a_test():
    assert SCRIPTS, EXAMPLES
    assert set(SCRIPTS) == set(EXPECTED), "add an entry to EXPECTED (and a run below) for each new example"


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_parses_and_has_a_usage_docstring(script):
    with open(os.path.join(EXAMPLES, script)) as f:
        tree = ast.parse(f.read())
    assert f"python examples/{script}" in (ast.get_docstring(tree) or "")


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, workdir, example_runs):
    if script not in EXPECTED:
        pytest.fail(f"examples/{script} has no test: add it to EXPECTED in tests/test_examples.py")
    stdout = run_example(script, example_runs)
    if script == "two_phase_fine_tune.py":
        assert (workdir / "run" / "best.keras").is_file()
    elif script == "export_saved_model.py":
        assert (workdir / "exported" / "saved_model.pb").is_file()
        assert (workdir / "exported" / "class_names.json").is_file()
        predicted = stdout.strip().splitlines()[-1]
        assert predicted.startswith("[") and all(name in CLASSES for name in ast.literal_eval(predicted))
    elif script == "text_classifier.py":
        assert (workdir / "exported_text" / "saved_model.pb").is_file()
        assert all(name in TEXTS for name in ast.literal_eval(stdout.strip().splitlines()[-1]))
    elif script in ("regression.py", "multilabel.py"):
        true, predicted = stdout.strip().splitlines()[-1].split("true: ")[1].split(" predicted: ")
        if script == "regression.py":  # values in the digits' units: numbers, one per image shown
            assert len(ast.literal_eval(predicted)) == len(ast.literal_eval(true)) == 5
        else:  # labels: digits present in the tile
            assert set(ast.literal_eval(true)) <= set("0123456789") >= set(ast.literal_eval(predicted))
    for fragment in EXPECTED[script]:
        assert fragment in stdout, f"{script} did not print {fragment!r}:\n{stdout}"
