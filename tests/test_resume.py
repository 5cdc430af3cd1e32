"""Resume: a run killed with SIGKILL (during an epoch, or during a checkpoint write) still loads, and
`--resume` finishes it in the same phase with the same total epoch count and a continuing optimizer.

The kill during a checkpoint write is tested on a regression run (tests/test_task_resume.py,
`test_regression_run_killed_mid_phase_resumes_from_the_cli`): one fresh process for both, as each start pays the
imports and the first tracing."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import pytest

from conftest import write_image_folder
from keras_transfer.training.state import read_checkpoint_state
from keras_transfer.cli import main
from keras_transfer.runs.resume import resume_run

RUN = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, epochs=1, fine_tune_epochs=2,
           batch_size=4, augmentation="none", n=1, verbose=0, validation_split=0.25)
STEPS = 3  # 12 training images / batch_size 4

# Runs `train_from_folder` on `tinyvgg` (tests/tiny_backbone.py: the tests folder is on the worker's path); argument 4
# (N > 0) stops the Nth write of last.keras half-way. Otherwise (N = 0), once the first fine-tuning epoch is saved,
# the worker holds in the next epoch's second batch (one optimizer step past the checkpoint) until it is killed: the
# kill lands mid-epoch on any machine load, where a fixed slowdown of every batch left a window of under a second.
WORKER = textwrap.dedent("""
    import json, os, sys, time
    import keras_transfer.io as io
    import keras_transfer.training.state as checkpoints
    from keras_transfer.runs.train import train_from_folder
    from tiny_backbone import register

    register()
    data, out, marker, mid_write = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    batch_end = checkpoints.TrainingState.on_train_batch_end
    def hold(self, batch, logs=None):
        result = batch_end(self, batch, logs)
        try:
            with open(os.path.join(out, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = None
        if not mid_write and batch >= 1 and state and state["phase"] == "fine_tune" and state["phase_epochs_done"] == 1:
            time.sleep(600)
        return result
    checkpoints.TrainingState.on_train_batch_end = hold
    write, calls = io._write_model, []
    def half_write(model, tmp, extra):
        write(model, tmp, extra)
        calls.extend([tmp] if extra else [])  # last.keras carries the state; best.keras does not
        if extra and len(calls) == mid_write:
            with open(tmp, "r+b") as f:
                f.truncate(os.path.getsize(tmp) // 2)
            open(marker, "w").close()
            time.sleep(600)
    io._write_model = half_write
    train_from_folder(data, out, **json.loads(sys.argv[5]))
""")


def _state(out):
    try:
        with open(os.path.join(out, "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _start(tmp_path, run=RUN):
    data = write_image_folder(tmp_path / "data", per_class=5)
    out, marker = str(tmp_path / "run"), str(tmp_path / "marker")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, str(script), data, out, marker, "0", json.dumps(run)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, out, marker


def _kill_when(process, condition):
    deadline = time.monotonic() + 600
    while not condition():
        if process.poll() is not None:  # died early: show its stderr (bytes, or text where Popen had text=True)
            err = process.stderr.read()
            pytest.fail((err.decode() if isinstance(err, bytes) else err)[-2000:])
        assert time.monotonic() < deadline, "the worker never reached the kill point"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def _assert_loads(out, outputs=3):
    for name in ("best.keras", "last.keras"):
        model = keras.models.load_model(os.path.join(out, name))
        assert model.output_shape == (None, outputs)


def _assert_finished(out, phases, outputs=3):
    history = json.load(open(os.path.join(out, "history.json")))
    assert history["epoch"] == list(range(len(phases)))
    assert history["phase"] == phases
    state = _state(out)
    assert state["epochs_done"] == len(phases) and state["phase"] == phases[-1] and state["phase_done"]
    assert state["iterations"] == phases.count(phases[-1]) * STEPS  # the last phase's optimizer counted every step
    with open(os.path.join(out, "history.csv")) as f:
        assert [line.split(",")[0] for line in f.read().split()[1:]] == [str(i) for i in range(len(phases))]
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    _assert_loads(out, outputs)


def test_sigkill_during_fine_tune_epoch_then_resume(tmp_path):
    process, out, _ = _start(tmp_path)

    def in_fine_tune():
        state = _state(out)
        return state is not None and state["phase"] == "fine_tune" and state["phase_epochs_done"] == 1
    _kill_when(process, in_fine_tune)
    killed = read_checkpoint_state(os.path.join(out, "last.keras"))
    assert killed["phase"] == "fine_tune" and killed["iterations"] == STEPS
    _assert_loads(out)

    model, result = resume_run(out, verbose=0)

    assert result.phases == ["fine_tune"]  # continued the phase, did not start over
    assert result.histories[0].epoch == [2]
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * STEPS  # continued, not reset
    _assert_finished(out, ["head", "fine_tune", "fine_tune"])


def test_resume_refuses_another_backend_and_changed_settings(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    config = dict(data_dir=str(tmp_path), backbone="mobilenetv2", keras_backend=other, run_format=1,
                  keras_version=keras.__version__)
    (out / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", "--out", str(out)]) == 2
    assert f"This run was trained under {other}; resume it with KERAS_BACKEND={other}" in capsys.readouterr().err

    (out / "config.json").write_text(json.dumps(dict(config, run_format=None)))
    with pytest.raises(ValueError, match="resumes run_format 1 only"):
        resume_run(str(out))
