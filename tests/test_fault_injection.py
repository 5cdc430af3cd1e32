"""Fault injection: SIGKILL at the N-th file write of a training run and of an export, then check the folder.

A worker process counts the writes that go through `keras_transfer.io` (each ends in `io._fsync`, after the
temporary file is complete and before it is renamed into place) and kills itself with SIGKILL at the N-th (one
worker for the file, a forked child a kill: the `killed` fixture). After
each kill: every file in the run folder is whole (JSON parses, `.keras` files are sound zips); then `train
--resume` either finishes the run (all epochs in the history, no temporary file left) or refuses in one line
that says what to do. These are the file layer's promises, the same under both backends, so this runs on the
first backend only; `test_resume.py` kills runs mid-epoch and mid-write and resumes them on both.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import keras
import pytest

from keras_transfer import cli

pytestmark = [pytest.mark.backend_free, pytest.mark.first_backend]  # its workers train: TensorFlow is faster here

WORKER = textwrap.dedent("""
    import json, os, signal, sys, traceback
    from keras_transfer import io
    from keras_transfer.cli import main
    from tiny_backbone import register

    register()  # TRAIN's `tinyvgg` (tests/tiny_backbone.py; the tests folder is on PYTHONPATH)
    # Keras and TensorFlow are imported once here (no op has run, so forking is safe); each job runs in a forked
    # child that counts the writes and kills itself with SIGKILL at the N-th, as a process of its own would
    fsync, results = io._fsync, {}
    for name, job in json.loads(sys.argv[1]).items():
        sys.stdout.flush(), sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1), os.dup2(log, 2)
            os.chdir(job["cwd"])
            calls = [0]
            def counting_fsync(path):
                fsync(path)
                calls[0] += 1
                if calls[0] == job["kill_at"]:
                    os.kill(os.getpid(), signal.SIGKILL)
            io._fsync = counting_fsync
            try:
                code = main(job["argv"])
            except BaseException:
                traceback.print_exc()
                code = 1
            print(f"writes={calls[0]}")
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)
        _, status = os.waitpid(pid, 0)
        results[name] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    print(json.dumps(results))
""")
TRAIN = ["--recipe", "two_phase", "--backbone", "tinyvgg", "--weights", "none", "--input-size", "32", "--strategy",
         "top_blocks", "--blocks", "1", "--epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8",
         "--augmentation", "none"]
# Kill points over the run's writes: the run folder's first files, then each epoch's checkpoint, training state
# and history (about 6 writes an epoch), and the end of the run (29 writes with recipe.json).
KILL_POINTS = (1, 4, 7, 10, 13, 17, 21, 25)
EXPORTS = [("saved_model", "exported", 1), ("keras", "model.keras", 1), ("tflite", "model.tflite", 1),
           ("tflite", "model.tflite", 2)]
Done = collections.namedtuple("Done", "returncode output")


def job_of(item):
    """The `killed` job a test of this file reads (None for a test that reads none)."""
    params = getattr(item, "callspec", None) and item.callspec.params
    if item.originalname == "test_a_run_killed_at_any_write_resumes_or_says_why_not":
        return f"train-{params['kill_at']}"
    if item.originalname == "test_an_export_killed_mid_write_leaves_no_target_and_the_next_one_cleans_up":
        return f"export-{params['fmt']}-{params['kill_at']}"
    return "count" if item.originalname == "test_the_kill_points_cover_the_whole_run" else None


@pytest.fixture(scope="module")
def killed(request, data_dir, tmp_path_factory):
    """Every kill of this file in ONE worker process (Keras imported once, a forked child a kill; it was a
    process a kill, 13 of them): `{job: (Done, folder)}` for each training kill point (`"train-N"`), the run
    that counts the writes (`"count"`) and each killed export (`"export-fmt-N"`, from the session's finished
    run, which exports only read). Only the jobs of the selected tests run (`-k`)."""
    selected = {job_of(item) for item in request.session.items if item.module is request.module}
    jobs, folders = {}, {}

    def job(name, kill_at, argv_of):
        if name not in selected:
            return
        folder = tmp_path_factory.mktemp(name)
        jobs[name] = {"kill_at": kill_at, "argv": argv_of(folder), "cwd": str(folder), "log": str(folder / "log")}
        folders[name] = folder

    for kill_at in KILL_POINTS:
        job(f"train-{kill_at}", kill_at, lambda folder: ["train", data_dir, *TRAIN, "--out", str(folder / "run")])
    job("count", 10 ** 6, lambda folder: ["train", data_dir, *TRAIN, "--out", str(folder / "run")])
    for fmt, target, kill_at in EXPORTS:
        job(f"export-{fmt}-{kill_at}", kill_at,
            lambda folder, fmt=fmt, target=target: ["export", request.getfixturevalue("finished_run")[1], "--format",
                                                    fmt, "--out", str(folder / "exports" / target)])
        if f"export-{fmt}-{kill_at}" in jobs:
            (folders[f"export-{fmt}-{kill_at}"] / "exports").mkdir()
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(jobs)], capture_output=True, text=True, env=env,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (Done(codes[name], (folders[name] / "log").read_text()), folders[name]) for name in jobs}


def _assert_every_file_whole(folder):
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.startswith(".tmp-"):
            continue  # a killed write's temporary file: never read, removed on the next start
        if name.endswith(".json"):
            with open(path) as f:
                json.load(f)
        elif name.endswith(".keras"):
            with zipfile.ZipFile(path) as z:
                assert z.testzip() is None, path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from conftest import write_image_folder

    return write_image_folder(tmp_path_factory.mktemp("faults") / "data", per_class=5)


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_a_run_killed_at_any_write_resumes_or_says_why_not(data_dir, killed, capsys, kill_at):
    done, folder = killed[f"train-{kill_at}"]
    out = str(folder / "run")
    assert done.returncode in (-signal.SIGKILL, 0), done.output[-2000:]
    if os.path.isdir(out):
        _assert_every_file_whole(out)

    code = cli.main(["train", "--resume", "--out", out])
    captured = capsys.readouterr()
    if code == 0:
        with open(os.path.join(out, "history.json")) as f:
            assert json.load(f)["phase"] == ["head", "fine_tune"]  # every epoch, once
        assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]  # the killed write's leftover is gone
        _assert_every_file_whole(out)
    else:
        err = captured.err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert any(hint in err for hint in ("already finished", "--overwrite", "holds no run")), err
        assert cli.main(["train", data_dir, *TRAIN, "--out", out, "--overwrite"]) == 0  # and it can start again
        capsys.readouterr()


def test_the_kill_points_cover_the_whole_run(killed):
    done, _ = killed["count"]
    assert done.returncode == 0, done.output[-2000:]
    writes = int(done.output.strip().splitlines()[-1].split("=")[1])
    assert max(KILL_POINTS) <= writes < max(KILL_POINTS) + 5, writes  # the last point falls near the end


@pytest.mark.parametrize("fmt, target, kill_at", EXPORTS)
def test_an_export_killed_mid_write_leaves_no_target_and_the_next_one_cleans_up(finished_run, killed, capsys, fmt,
                                                                                target, kill_at):
    run = finished_run[1]  # the session's finished tiny run (tests/conftest.py); exports only read it
    done, folder = killed[f"export-{fmt}-{kill_at}"]
    exports = folder / "exports"
    assert done.returncode == -signal.SIGKILL, done.output[-2000:]
    assert not os.path.exists(exports / target)
    assert cli.main(["export", run, "--format", fmt, "--out", str(exports / target)]) == 0
    left = sorted(os.listdir(exports))
    assert left == sorted([target] + ([target.replace(".tflite", ".class_names.json")] if fmt == "tflite" else []))
    capsys.readouterr()
