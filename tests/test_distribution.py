"""Data-parallel training (`training.distribution`): N virtual devices give the weights of one device with the
same global batch, and each misconfiguration is one clear line.

The virtual devices must exist before JAX / TensorFlow start, so the checks run in one subprocess per backend
(`distribution_worker.py`): JAX gets `XLA_FLAGS=--xla_force_host_platform_device_count=4`, TensorFlow splits its
CPU into 4 logical devices. The same process answers the refusal that needs those devices (more devices than
training images) and starts the CLI run that the kill-and-resume test kills. Tolerance: 1e-5 (float32 sums over
N slices of the batch instead of one; measured differences are ~1e-7, while training moves the weights by > 1e-2).
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from conftest import write_image_folder
from keras_transfer.errors import KerasTransferError
from keras_transfer.training.distribution import DataParallel, check_devices, parse_devices, setup_devices

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-5


def _env(devices, **extra):
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                KERAS_BACKEND=keras.backend.backend(), PYTHONPATH=os.pathsep.join(sys.path), **extra)


def _wait_for(process, log, condition):
    """Polls `condition` until it holds; fails with the worker's log if the process ended first."""
    deadline = time.monotonic() + 600
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the worker ended (status {process.returncode}):\n{open(log).read()[-3000:]}")
        assert time.monotonic() < deadline, "the worker never got there"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def worker_process(request, tmp_path_factory):
    """`(process, result, run folder, log)`: `distribution_worker.py 4` on 4 virtual devices and its result. Where this
    module's CLI test is selected, the same process then starts that test's `keras-transfer train ... --devices 2`
    run (held in its second epoch until the test kills it): one process start fewer, as each pays Keras's and
    the backend's start-up. The process is killed at the end of the module if it still runs."""
    folder = tmp_path_factory.mktemp("distribution_worker")
    data, out = write_image_folder(folder / "data", per_class=5), str(folder / "run")
    cli = any(item.module is request.module and item.originalname == "test_cli_devices_2_trains_survives_sigkill_"
              "resumes_and_exports" for item in request.session.items)
    args, extra = (["train", data, "--out", out] + RUN, dict(KT_TEST_HOLD_AT_EPOCH="1")) if cli else ([], {})
    log = str(folder / "worker.log")
    with open(log, "w") as f:
        process = subprocess.Popen([sys.executable, os.path.join(HERE, "distribution_worker.py"), "4", str(folder)]
                                   + args, env=_env(4, **extra), stdout=f, stderr=subprocess.STDOUT)
    try:
        _wait_for(process, log, lambda: os.path.exists(folder / "result.json"))
        if not cli:
            assert process.wait(timeout=600) == 0, open(log).read()[-3000:]
        yield process, json.load(open(folder / "result.json")), out, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def worker(worker_process):
    return worker_process[1]


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


def test_more_devices_than_training_images_is_refused_before_the_run_folder(worker):
    """`keras-transfer train ... --devices 4 --backbone vgg16` on 3 training images, in the worker (4 virtual devices,
    so the check of the machine's devices passes; it had a fresh process of its own, with 8): refused in one line
    (exit status 2, no traceback) before the run folder is written."""
    refusal = worker["refusal"]
    errors = [line for line in refusal["stderr"].splitlines() if line.startswith("error")]
    assert refusal["code"] == 2 and len(errors) == 1, refusal["stderr"][-2000:]
    assert "only 3 training image(s)" in errors[0] and "devices=4" in errors[0] and "--resume" not in errors[0]
    assert "Traceback" not in refusal["stderr"] and not refusal["run_folder"]


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


def test_cli_devices_2_trains_survives_sigkill_resumes_and_exports(worker_process, tmp_path):
    """`keras-transfer train ... --devices 2` on 2 of the worker's 4 virtual devices (`worker_process`: 3 classes x
    5 images), killed during its second (last) epoch, resumed in a new process on 2 virtual devices to the end,
    then exported from this one-device process."""
    from test_resume import _state
    from keras_transfer.cli import main
    from keras_transfer.training.state import read_checkpoint_state

    first, _, out, log = worker_process

    def in_second_epoch():
        state = _state(out)
        return state is not None and state["epochs_done"] == 1
    _wait_for(first, log, in_second_epoch)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert read_checkpoint_state(os.path.join(out, "last.keras"))["epochs_done"] == 1

    resumed = subprocess.run([sys.executable, os.path.join(HERE, "distribution_worker.py"), "cli", "train",
                              "--resume", "--out", out], env=_env(2), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = _state(out)
    assert state["epochs_done"] == 2 and state["phase_done"]
    assert state["iterations"] == 2 * STEPS  # one optimizer across the kill: global batches of 4, not 2
    config = json.load(open(os.path.join(out, "config.json")))["settings"]
    assert config["devices"] == 2 and config["distribution"] == "data_parallel"
    plan = json.load(open(os.path.join(out, "recipe.json")))["plan"]
    assert any(line.startswith("devices: 2 (") and "global batch 4 (2 a device)" in line for line in plan), plan
    assert main(["export", out, "--out", str(tmp_path / "exported")]) == 0  # checked against best.keras
    assert os.path.isfile(tmp_path / "exported" / "saved_model.pb")
