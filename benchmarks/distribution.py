"""Data-parallel overhead: training steps/s on 1 vs N devices, keras_transfer's plan vs hand-written Keras.

Four timed setups in one process, epochs alternating so machine noise hits all of them:
- hand-written Keras on 1 device, and on N devices through the engine directly (JAX:
  `keras.distribution.DataParallel(devices=...)`; TF: `tf.distribute.MirroredStrategy` over N logical CPUs);
- keras_transfer (`build_classifier`, `freeze`, `compile_model`) inside `setup_devices("auto")` and
  `setup_devices(N)`.
Same model (a VGG16-style classifier, everything trainable), same in-memory data, same global batch. The script
prints the median epoch's steps/s of each and the ratios N/1 and keras_transfer/Keras. On N virtual devices of
one CPU there is no speed-up to expect: the ratio N/1 is the cost of splitting and all-reducing; the
keras_transfer/Keras ratio says whether keras_transfer adds anything to it.

    KERAS_BACKEND=jax python benchmarks/distribution.py --devices 2
    KERAS_BACKEND=tensorflow python benchmarks/distribution.py --devices 2
"""

import argparse
import contextlib
import os
import statistics
import sys
import time


def parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="the global batch")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


ARGS = parse()
if "jax" == os.environ.get("KERAS_BACKEND") and "xla_force_host_platform_device_count" not in os.environ.get(
        "XLA_FLAGS", ""):  # before jax is imported: N CPU devices (a GPU host has its own)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={ARGS.devices}").strip()

import keras  # noqa: E402  (after XLA_FLAGS)
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import keras_transfer as kt  # noqa: E402
from keras_transfer.training.distribution import setup_devices  # noqa: E402


def hand_written(spec, size, classes):
    """A VGG16-style classifier written by hand, every layer trainable, Adam."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = spec.build(weights=None, include_top=False, input_shape=(size, size, 3))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def ours(spec, size, classes):
    model = kt.build_classifier(spec.name, classes, weights=None, input_size=size, augmentation=None, dropout=0.0)
    kt.freeze(model, "full", train_batchnorm=True)  # as the hand-written model, whose BatchNorm trains
    kt.compile_model(model, "fine_tune_all")
    return model


def keras_engine(devices):
    """The engine a Keras user would write for N devices (None: one device)."""
    if devices == 1:
        return None
    if keras.backend.backend() == "jax":
        return keras.distribution.DataParallel(devices=keras.distribution.list_devices()[:devices])
    import tensorflow as tf
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def scoped(engine):
    """A callable giving a fresh scope of `engine` (or none) each time."""
    return engine.scope if engine is not None else contextlib.nullcontext


def main():
    n = ARGS.devices
    if keras.backend.backend() == "tensorflow":
        setup_devices(n)  # splits the CPU into n logical devices before any op
    spec = kt.get_backbone_spec(ARGS.backbone)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (ARGS.images, ARGS.size, ARGS.size, 3)).astype("float32")
    y = rng.integers(0, 10, ARGS.images)
    setups = {}
    for name, scope, build in (("keras 1", scoped(None), hand_written),
                               (f"keras {n}", scoped(keras_engine(n)), hand_written),
                               ("keras_transfer 1", setup_devices("auto").scope, ours),
                               (f"keras_transfer {n}", setup_devices(n).scope, ours)):
        with scope():
            keras.utils.set_random_seed(0)
            model = build(spec, ARGS.size, 10)
            model.fit(x, y, batch_size=ARGS.batch, epochs=1, verbose=0)  # warm-up: tracing is not timed
        setups[name] = (scope, model, [])
    steps = -(-ARGS.images // ARGS.batch)
    for _ in range(ARGS.repeats):
        for scope, model, times in setups.values():
            with scope():
                start = time.perf_counter()
                model.fit(x, y, batch_size=ARGS.batch, epochs=1, verbose=0)
                times.append(time.perf_counter() - start)
    rate = {name: steps / statistics.median(times) for name, (_, _, times) in setups.items()}
    print(f"backend={keras.backend.backend()} backbone={spec.name} size={ARGS.size} images={ARGS.images} "
          f"global batch={ARGS.batch} devices={n} repeats={ARGS.repeats} cpus={os.cpu_count()}")
    for name, value in rate.items():
        print(f"  {name:>18} device(s): {value:.3f} steps/s")
    keras_ratio, ours_ratio = rate[f"keras {n}"] / rate["keras 1"], rate[f"keras_transfer {n}"] / rate["keras_transfer 1"]
    print(f"N/1: hand-written Keras {keras_ratio:.3f}, keras_transfer {ours_ratio:.3f}; keras_transfer/Keras at 1: "
          f"{rate['keras_transfer 1'] / rate['keras 1']:.3f}, at {n}: {rate[f'keras_transfer {n}'] / rate[f'keras {n}']:.3f}")


if __name__ == "__main__":
    main()
