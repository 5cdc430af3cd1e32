"""Run in a subprocess by tests/test_distribution.py: the virtual devices must exist before JAX / TensorFlow start.

argv[1]: the most virtual devices to make (JAX: XLA_FLAGS set by the caller; TF: the CPU split here).
Prints one JSON line: per device count, the largest weight difference from a single-device run with the same
global batch; and the one-line errors of the misconfigurations.
"""

import json
import sys

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.training.distribution import setup_devices

MOST = int(sys.argv[1])
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


def error_of(call):
    try:
        call()
    except KerasTransferError as error:
        return str(error)
    return None


def main():
    if keras.backend.backend() == "tensorflow":
        plan = setup_devices(MOST)  # splits the CPU into MOST logical devices before any op
    start, single, one = train(setup_devices("auto"))
    out = dict(backend=keras.backend.backend(), single_replicas=one, max_difference={}, replicas={},
               moved=max(float(np.max(np.abs(a - b))) for a, b in zip(start, single)))
    for n in sorted({2, MOST}):
        _, weights, out["replicas"][n] = train(setup_devices(n))
        out["max_difference"][n] = max(float(np.max(np.abs(a - b))) for a, b in zip(single, weights))
    out["errors"] = dict(
        too_many=error_of(lambda: setup_devices(MOST * 2)),
        not_divisible=error_of(lambda: setup_devices(2).batch_and_scale(7, 32)),
        backend=error_of(lambda: setup_devices(2, backend="torch")),
        distribution=error_of(lambda: setup_devices(2, "model_parallel")),
        devices=error_of(lambda: setup_devices(0)),
    )
    out["auto_batch"] = setup_devices(2).batch_and_scale(None, 4)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
