"""Precision and compilation options on this machine: images per second of a full fine-tuning step for
each keras_transfer setting, as a ratio against the hand-written float32 Keras model in the same run.

The baseline is `keras.applications` + pooling + Dense at float32 compiled with Keras's default
(`jit_compile="auto"`). The keras_transfer rows build the same network with `build_classifier(...,
precision=...)` and `compile_model(..., jit_compile=...)`: the default (`float32`, `"auto"`) first, then
each option; both models are those of `throughput.py`. Steps alternate between the models (the order
rotates every step) so all see the same load; medians over `--steps` timed `train_on_batch` steps after
one untimed warm-up step. It shows whether an option pays on this device; the defaults must not be
slower than the baseline.

    KERAS_BACKEND=tensorflow python benchmarks/precision.py
    KERAS_BACKEND=jax python benchmarks/precision.py --backbone mobilenetv2 --size 160 --steps 10
"""

import argparse
import os
import statistics
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_transfer as kt  # noqa: E402
from throughput import hand_written, ours  # noqa: E402 (the same two models as the throughput benchmark)

SETTINGS = [
    ("float32", "auto"),
    ("float32", True),
    ("mixed_bfloat16", "auto"),
    ("mixed_float16", "auto"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    spec = kt.get_backbone_spec(args.backbone)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch).astype("int32")

    models = {"keras float32": hand_written(spec, args.size, 10, frozen=False)}
    for precision, jit in SETTINGS:
        models[f"kt {precision} jit={jit}"] = ours(spec, args.size, 10, frozen=False, precision=precision, jit_compile=jit)
    for model in models.values():
        model.train_on_batch(x, y)  # warm-up: tracing and compilation are not timed
    times = {name: [] for name in models}
    names = list(models)
    for step in range(args.steps):
        for name in names[step % len(names):] + names[:step % len(names)]:  # rotate: no model always goes first
            model = models[name]
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    rates = {name: args.batch / statistics.median(t) for name, t in times.items()}

    print(f"backend={keras.backend.backend()} {spec.name} {args.size} px, full fine-tuning, batch={args.batch}, "
          f"timed steps={args.steps} (median)")
    print(f"{'setting':34s} {'img/s':>8s} {'vs keras float32':>17s}")
    base = rates["keras float32"]
    for name, rate in rates.items():
        print(f"{name:34s} {rate:8.2f} {rate / base:17.3f}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
