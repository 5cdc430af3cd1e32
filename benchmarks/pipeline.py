"""Input pipeline: training steps per second from a folder of JPEG files vs from tensors in memory.

The same keras_transfer classifier (frozen backbone, head training) trains one epoch at a time on
(a) a plain `tf.data.Dataset.from_tensor_slices` of the decoded, resized images already in memory (the
hand-written Keras baseline: no decoding at all), (b) `pipeline.make_dataset` reading JPEG photos (crops of
real photos, benchmarks/photos.py)
(parallel decoding, prefetch) and (c) the same with `cache="memory"`. Epochs alternate over `--repeats`
(after a warm-up epoch of each); the script prints the median steps/s and the ratio of (b) and (c) to (a)
(goal: within 10%, i.e. ratio >= 0.9).

    KERAS_BACKEND=tensorflow python benchmarks/pipeline.py
    KERAS_BACKEND=jax python benchmarks/pipeline.py --backbone resnet50 --size 224 --images 512
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_transfer as kt  # noqa: E402
from keras_transfer.data.images import load_images  # noqa: E402
from keras_transfer.data.pipeline import make_dataset  # noqa: E402
from photos import photo_files  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = photo_files(folder, args.images)
        labels = np.arange(args.images) % 10
        x = load_images(paths, args.size)
        datasets = {
            "tensors in memory (baseline)": tf.data.Dataset.from_tensor_slices(
                (x, labels.astype("int32"))).batch(args.batch).prefetch(tf.data.AUTOTUNE),
            "kt pipeline from JPEG": make_dataset(paths, labels, image_size=args.size, batch_size=args.batch),
            "kt pipeline, cache=memory": make_dataset(paths, labels, image_size=args.size, batch_size=args.batch,
                                                      cache="memory"),
        }
        model = kt.build_classifier(args.backbone, 10, weights=None, input_size=args.size, augmentation="none")
        kt.freeze(model, "head_only")
        kt.compile_model(model, "feature_extraction")
        steps = -(-args.images // args.batch)
        rates = {name: [] for name in datasets}
        for name, data in datasets.items():  # warm-up: tracing, and filling the memory cache
            model.fit(data, epochs=1, verbose=0, shuffle=False)
        for _ in range(args.repeats):
            for name, data in datasets.items():
                start = time.perf_counter()
                model.fit(data, epochs=1, verbose=0, shuffle=False)
                rates[name].append(steps / (time.perf_counter() - start))
    base = statistics.median(rates["tensors in memory (baseline)"])
    print(f"backend={keras.backend.backend()} backbone={args.backbone} size={args.size} "
          f"jpeg=375x500 photos images={args.images} batch={args.batch} repeats={args.repeats}")
    for name, values in rates.items():
        print(f"{name:30s} {statistics.median(values):6.2f} steps/s  ratio {statistics.median(values) / base:.3f}")


if __name__ == "__main__":
    main()
