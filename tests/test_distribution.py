"""Data-parallel training (`training.distribution`): N virtual devices give the weights of one device with the
same global batch, and each misconfiguration is one clear line.

The virtual devices must exist before JAX / TensorFlow start, so the checks run in one subprocess per backend
(`distribution_worker.py`): JAX gets `XLA_FLAGS=--xla_force_host_platform_device_count=4`, TensorFlow splits its
CPU into 4 logical devices. Tolerance: 1e-5 (float32 sums over N slices of the batch instead of one; measured
differences are ~1e-7, while training moves the weights by > 1e-2).
"""

import json
import os
import subprocess
import sys

import keras
import pytest

from keras_transfer.errors import KerasTransferError
from keras_transfer.training.distribution import DataParallel, check_devices, parse_devices, setup_devices

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-5


def run_worker(devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               KERAS_BACKEND=keras.backend.backend(), PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, os.path.join(HERE, "distribution_worker.py"), str(devices)], env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def worker():
    return run_worker(4)


def test_data_parallel_matches_one_device_on_2_and_4_devices(worker):
    assert worker["backend"] == keras.backend.backend()
    assert worker["single_replicas"] == 1
    assert worker["replicas"] == {"2": 2, "4": 4}  # the variables really live on (or run on) N devices
    assert worker["moved"] > 1e-2  # training changed the weights: the comparison is not of two starting points
    for n in ("2", "4"):
        assert worker["max_difference"][n] < TOLERANCE, worker["max_difference"]


def test_features_cached_on_2_devices_match_one_device(worker):
    """Feature caching extracts with the distributed model (TF: `predict`, as Keras's `predict_on_batch`
    hands each replica the whole batch; JAX: `predict_on_batch` shards it): the same features as one device."""
    features = worker["features"]
    assert features["shape"] == [8, 16] and features["spread"] > 0
    assert features["max_difference"] < TOLERANCE * max(1.0, features["spread"]), features


def test_misconfigurations_are_one_line(worker):
    errors = worker["errors"]
    for message in errors.values():
        assert message and "\n" not in message and "Received:" in message
    assert "more devices than the 4" in errors["too_many"] and "devices=8" in errors["too_many"]
    assert "must divide by 2" in errors["not_divisible"] and "batch_size=7" in errors["not_divisible"]
    assert "jax and tensorflow" in errors["backend"] and "backend='torch'" in errors["backend"]
    assert "Unknown distribution 'model_parallel'" in errors["distribution"]
    assert "devices=0" in errors["devices"]
    assert worker["auto_batch"] == [8, 2]  # unset batch: 2 x the single-device 4, learning rates x2


@pytest.mark.backend_free
def test_devices_setting_parses_and_checks():
    assert parse_devices("all") == "all" and parse_devices("4") == 4 and parse_devices("Auto") == "auto"
    check_devices("devices", 2)
    with pytest.raises(KerasTransferError, match="Received: devices='two'"):
        check_devices("devices", "two")
    with pytest.raises(KerasTransferError, match="Received: devices=True"):
        check_devices("devices", True)


def test_auto_is_one_device_without_a_scope():
    plan = setup_devices("auto")
    assert plan == DataParallel(devices=1, backend=keras.backend.backend())
    with plan.scope():
        pass
    assert plan.batch_and_scale(None, 16) == (16, 1) and plan.batch_and_scale(6, 16) == (6, 1)
    assert plan.describe(16, 1) == "devices: 1 (no distribution)"


RUN = ["--recipe", "two_phase", "--strategy", "head_only", "--backbone", "tinyvgg", "--weights", "none",
       "--input-size", "32", "--epochs", "2", "--batch-size", "4", "--augmentation", "none",
       "--validation-split", "0.25", "--devices", "2"]
STEPS = 3  # 12 training images / global batch 4


def _cli(args, hold_at_epoch=None):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               KERAS_BACKEND=keras.backend.backend(), PYTHONPATH=os.pathsep.join(sys.path))
    if hold_at_epoch is not None:
        env["KT_TEST_HOLD_AT_EPOCH"] = str(hold_at_epoch)  # holds mid-epoch until killed (distribution_worker.cli)
    return subprocess.Popen([sys.executable, os.path.join(HERE, "distribution_worker.py"), "cli"] + args, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_cli_devices_2_trains_survives_sigkill_resumes_and_exports(tmp_path):
    """`keras-transfer train ... --devices 2` on 2 virtual devices, killed during its second (last) epoch, resumed
    (in a new process, on 2 devices again) to the end, then exported from this one-device process."""
    from conftest import write_image_folder
    from test_resume import _kill_when, _state
    from keras_transfer.cli import main
    from keras_transfer.training.state import read_checkpoint_state

    data, out = write_image_folder(tmp_path / "data", per_class=5), str(tmp_path / "run")
    first = _cli(["train", data, "--out", out] + RUN, hold_at_epoch=1)

    def in_second_epoch():
        state = _state(out)
        return state is not None and state["epochs_done"] == 1
    _kill_when(first, in_second_epoch)
    assert read_checkpoint_state(os.path.join(out, "last.keras"))["epochs_done"] == 1

    resumed = _cli(["train", "--resume", "--out", out])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    state = _state(out)
    assert state["epochs_done"] == 2 and state["phase_done"]
    assert state["iterations"] == 2 * STEPS  # one optimizer across the kill: global batches of 4, not 2
    config = json.load(open(os.path.join(out, "config.json")))["settings"]
    assert config["devices"] == 2 and config["distribution"] == "data_parallel"
    plan = json.load(open(os.path.join(out, "recipe.json")))["plan"]
    assert any(line.startswith("devices: 2 (") and "global batch 4 (2 a device)" in line for line in plan), plan
    assert main(["export", out, "--out", str(tmp_path / "exported")]) == 0  # checked against best.keras
    assert os.path.isfile(tmp_path / "exported" / "saved_model.pb")
