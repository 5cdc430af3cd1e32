"""Run in a subprocess by tests/test_distribution.py: the virtual devices must exist before JAX / TensorFlow start.

`distribution_worker.py N FOLDER [ARGS...]`: N, the most virtual devices to make (JAX: XLA_FLAGS set by the caller;
TF: the CPU split here). Writes FOLDER/result.json (a scratch folder): per device count, the largest weight
difference from a single-device run with the same global batch; the one-line errors of the misconfigurations; and
what `keras-transfer train --devices N` on N - 1 training images (written under FOLDER) answers: that refusal
needs the N devices to exist, so it runs here rather than in a process of its own (each pays Keras's start-up).
With ARGS, the same process then runs `keras-transfer ARGS...` as `cli` below (one process start fewer for
test_distribution's kill-and-resume test).

`distribution_worker.py cli ARGS...`: `keras-transfer ARGS...`; with `KT_TEST_HOLD_AT_EPOCH=N` set, it holds in the
second batch of epoch N + 1 (counted from 1) until it is killed, so a test can kill it mid-epoch on any machine load.

Both register `tinyvgg` (tests/tiny_backbone.py, beside this script) for the runs and models they build.
"""

import json
import os
import sys

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.training.distribution import setup_devices
from tiny_backbone import register

register()

GLOBAL_BATCH = 8


def train(plan):
    """A small deterministic model (no dropout, no BatchNorm), SGD, no shuffling: 2 epochs of 4 steps."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), np.arange(32) % 3
    with plan.scope():
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        start = [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]
        model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=2, shuffle=False, verbose=0)
    return start, [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights], replicas(model)


def replicas(model):
    """The devices holding the model's first variable (JAX), or the replicas its strategy runs (TF)."""
    if keras.backend.backend() == "jax":
        return len(model.weights[0].value.sharding.device_set)
    return model.distribute_strategy.num_replicas_in_sync


def cached_features(plan):
    """Features cached (`extract_features`) by a random `tinyvgg` built in `plan`'s scope: 8 images, batch 4."""
    from keras_transfer.models.classifier import build_classifier
    from keras_transfer.training.caching import extract_features

    x = np.random.default_rng(1).uniform(0, 255, size=(8, 32, 32, 3)).astype("float32")
    with plan.scope():
        keras.utils.set_random_seed(3)
        model = build_classifier("tinyvgg", 3, weights=None, input_size=32, augmentation="none")
        return extract_features(model, (x, np.arange(8) % 3), batch_size=4).features


def error_of(call):
    try:
        call()
    except KerasTransferError as error:
        return str(error)
    return None


def refusal(devices, folder):
    """`keras-transfer train` asking for `devices` devices on `devices - 1` training images: its exit status,
    what it wrote to stderr and whether the run folder exists afterwards."""
    import contextlib
    import io

    from image_files import write_png
    from keras_transfer.cli import main as keras_transfer

    data, out = os.path.join(folder, "few"), os.path.join(folder, "run")
    for i in range(devices - 1):  # one image a class
        os.makedirs(os.path.join(data, f"c{i}"))
        write_png(os.path.join(data, f"c{i}", "img.png"), 8, 8, seed=i)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = keras_transfer(["train", data, "--out", out, "--weights", "none", "--validation-split", "0",
                               "--devices", str(devices), "--backbone", "vgg16", "--input-size", "32"])
    return dict(code=code, stderr=err.getvalue(), run_folder=os.path.exists(out))


def main():
    most = int(sys.argv[1])
    if keras.backend.backend() == "tensorflow":
        setup_devices(most)  # splits the CPU into MOST logical devices before any op
    start, single, one = train(setup_devices("auto"))
    out = dict(backend=keras.backend.backend(), single_replicas=one, max_difference={}, replicas={},
               moved=max(float(np.max(np.abs(a - b))) for a, b in zip(start, single)))
    for n in sorted({2, most}):
        _, weights, out["replicas"][n] = train(setup_devices(n))
        out["max_difference"][n] = max(float(np.max(np.abs(a - b))) for a, b in zip(single, weights))
    single_features, parallel_features = cached_features(setup_devices("auto")), cached_features(setup_devices(2))
    out["features"] = dict(shape=list(parallel_features.shape), spread=float(np.std(single_features)),
                           max_difference=float(np.max(np.abs(single_features - parallel_features))))
    out["errors"] = dict(
        too_many=error_of(lambda: setup_devices(most * 2)),
        not_divisible=error_of(lambda: setup_devices(2).batch_and_scale(7, 32)),
        backend=error_of(lambda: setup_devices(2, backend="torch")),
        distribution=error_of(lambda: setup_devices(2, "model_parallel")),
        devices=error_of(lambda: setup_devices(0)),
    )
    out["auto_batch"] = setup_devices(2).batch_and_scale(None, 4)
    out["refusal"] = refusal(most, sys.argv[2])
    result = os.path.join(sys.argv[2], "result.json")
    with open(result + ".tmp", "w") as f:
        json.dump(out, f)
    os.replace(result + ".tmp", result)  # whole when the test sees it
    if sys.argv[3:]:
        cli(sys.argv[3:])


def cli(args):
    import time

    import keras_transfer.training.state as state
    from keras_transfer.cli import main as keras_transfer

    hold_at, out = os.environ.get("KT_TEST_HOLD_AT_EPOCH"), args[args.index("--out") + 1]
    batch_end = state.TrainingState.on_train_batch_end

    def hold(self, batch, logs=None):
        result = batch_end(self, batch, logs)
        if hold_at is not None and batch >= 1:
            try:
                with open(os.path.join(out, "state.json")) as f:
                    done = json.load(f)["epochs_done"]
            except (OSError, ValueError):
                done = None
            if done == int(hold_at):
                time.sleep(600)
        return result

    state.TrainingState.on_train_batch_end = hold
    sys.exit(keras_transfer(args))


if __name__ == "__main__":
    cli(sys.argv[2:]) if sys.argv[1] == "cli" else main()
