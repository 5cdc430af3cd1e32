"""Runs several examples/*.py scripts one after the other in this one process, each as `python script args`.

    python tests/examples_driver.py plan.json results/

`plan.json` is a list of `{"script": path, "args": [...], "cwd": folder}`. Each script runs with `runpy` as
`__main__`, with its own `sys.argv`, working directory, fresh Keras state and seed, and its stdout and stderr
captured. For each one the driver writes `results/<name>.started` before it starts and `results/<name>.json`
(`ok`, `stdout`, `stderr`, `error`: the traceback or the exit code, `seconds`: its wall time, to see which script
the process's time went to, `backend`: the Keras backend it ran on) after it ends, so one failing script does not
stop the others, and a crash of the whole process shows in which script it happened (a `.started` without its
`.json`). The driver exits 0 once every script has been run, whatever their outcome.

Keras, TensorFlow or JAX are imported and set up once for all the scripts instead of once each, and the test
backbone `tinyvgg` (tests/tiny_backbone.py, beside this script) is registered for them.
"""

import contextlib
import io
import json
import os
import runpy
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from tiny_backbone import register  # noqa: E402

register()


def run_one(script, args, cwd):
    """Runs `script` as `__main__` with `args` in `cwd`; returns the result written to `<name>.json`."""
    stdout, stderr = io.StringIO(), io.StringIO()
    error = None
    start = time.perf_counter()
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(0)
    try:
        sys.argv = [script, *map(str, args)]
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            error = f"SystemExit: {exit_.code}"
    except BaseException:  # noqa: BLE001 - reported per script; the next script still runs
        error = traceback.format_exc()
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        _close_figures()
    return {"ok": error is None, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "error": error,
            "seconds": round(time.perf_counter() - start, 1), "backend": keras.backend.backend()}


def _close_figures():
    """Closes the matplotlib figures a script left open (find_lr draws one), if matplotlib was imported."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def main(plan_path, results_dir):
    with open(plan_path) as f:
        plan = json.load(f)
    os.makedirs(results_dir, exist_ok=True)
    for entry in plan:
        name = os.path.basename(entry["script"])
        open(os.path.join(results_dir, f"{name}.started"), "w").close()
        result = run_one(entry["script"], entry["args"], entry["cwd"])
        with open(os.path.join(results_dir, f"{name}.json"), "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: python tests/examples_driver.py PLAN.json RESULTS_DIR. Received: {sys.argv[1:]}")
    main(sys.argv[1], sys.argv[2])
