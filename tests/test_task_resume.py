"""Resume for regression and multi-label runs: a task run killed with SIGKILL mid-phase (mid-epoch, or while it
writes a checkpoint) continues with `resume_run` / `keras-transfer train --resume` to the planned total of epochs and
steps, its optimizer continued; a multi-label run's thresholds are still chosen on the validation split once the
resumed run ends."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_transfer.cli import main
from keras_transfer.data.digit_tasks import write_digit_tiles, write_digit_values
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.heads import get_thresholds, head_of
from keras_transfer.runs.resume import resume_run
from keras_transfer.serving.task_metrics import choose_thresholds
from keras_transfer.serving.task_report import task_outputs
from keras_transfer.training.state import read_checkpoint_state
from test_resume import WORKER, _assert_loads, _kill_when, _state
from test_resume import _assert_finished as _assert_run_finished

# 16 images, a quarter for validation: 12 training images / batch 4 = 3 steps an epoch. jit_compile left at "auto"
# (XLA), as test_resume's runs: with jit_compile=False JAX dispatched every op on its own (this file's two tests,
# measured back to back: 56 s against 44 s; TensorFlow the same either way).
RUN = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, epochs=1, fine_tune_epochs=2,
           batch_size=4, augmentation="none", n=1, verbose=0, validation_split=0.25)
STEPS = 3
PHASES = ["head", "fine_tune", "fine_tune"]


def _killed_in_fine_tune(tmp_path, manifest, task, mid_write=0):
    """Starts a task run in a subprocess (test_resume.WORKER, on `tinyvgg`) and kills it once the first
    fine-tuning epoch is saved: in the next epoch's second batch, or (`mid_write=N`) half-way through the Nth write
    of last.keras."""
    out, script, marker = str(tmp_path / "run"), tmp_path / "worker.py", tmp_path / "marker"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, str(script), manifest, out, str(marker), str(mid_write),
                                json.dumps(dict(RUN, task=task))], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)

    def in_fine_tune():
        state = _state(out)
        return state is not None and state["phase"] == "fine_tune" and state["phase_epochs_done"] == 1
    _kill_when(process, marker.exists if mid_write else in_fine_tune)
    killed = read_checkpoint_state(os.path.join(out, "last.keras"))
    assert killed["phase"] == "fine_tune" and killed["iterations"] == STEPS and killed["epochs_done"] == 2
    assert not os.path.exists(os.path.join(out, "report.json"))  # it died before the end
    return out


def _assert_finished(out):
    history = json.load(open(os.path.join(out, "history.json")))
    assert history["epoch"] == [0, 1, 2] and history["phase"] == PHASES
    state = _state(out)
    assert state["epochs_done"] == 3 and state["phase_done"] and state["iterations"] == 2 * STEPS
    assert os.path.isfile(os.path.join(out, "report.json"))


def test_multilabel_run_killed_mid_phase_resumes_and_chooses_thresholds_on_validation(tmp_path):
    manifest = write_digit_tiles(str(tmp_path / "data"), n=16, digits=(0, 1, 2))
    out = _killed_in_fine_tune(tmp_path, manifest, "multilabel")

    model, result = resume_run(out, verbose=0)

    assert result.phases == ["fine_tune"] and result.histories[0].epoch == [2]  # continued, not started over
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * STEPS
    _assert_finished(out)
    best = keras.saving.load_model(os.path.join(out, "best.keras"))
    val = json.load(open(os.path.join(out, "splits.json")))["val"]
    x = np.stack([np.asarray(keras.utils.load_img(p, target_size=(32, 32)), "float32") for p, _ in val])
    y = np.array([t for _, t in val])
    expected = choose_thresholds(*task_outputs(best, (x, y)))
    assert get_thresholds(best) == pytest.approx(expected, abs=1e-5)
    assert get_thresholds(model) == get_thresholds(best)


def test_regression_run_killed_mid_phase_resumes_from_the_cli(tmp_path):
    """Killed while writing last.keras (was test_resume's test_sigkill_during_checkpoint_write_then_cli_resume, on
    its own fresh process): last.keras is written 5 times, after each epoch and after each phase's best weights are
    restored; the 4th is the second fine-tuning epoch's, so the first one's is the checkpoint left."""
    manifest = write_digit_values(str(tmp_path / "data"), n=16)
    out = _killed_in_fine_tune(tmp_path, manifest, "regression", mid_write=4)
    assert [n for n in os.listdir(out) if n.startswith(".tmp-")]  # the half-written file is a temp file
    _assert_loads(out, outputs=1)

    assert main(["train", "--resume", "--out", out]) == 0

    _assert_finished(out)
    _assert_run_finished(out, PHASES, outputs=1)  # history.csv too, no temp file left, both models load
    best = keras.saving.load_model(os.path.join(out, "best.keras"))
    train = json.load(open(os.path.join(out, "splits.json")))["train"]
    np.testing.assert_allclose(head_of(best).target_mean, np.mean([t for _, t in train], 0), rtol=1e-6)
    with pytest.raises(KerasTransferError, match="already finished all its epochs"):
        resume_run(out, verbose=0)
    with pytest.raises(KerasTransferError, match="loss: run None, requested 'mae'"):
        resume_run(out, verbose=0, loss="mae")
