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
