"""Feature caching: head training on cached features vs the Keras guide's frozen-backbone training.

Speed: the same data, the same epochs. The baseline is the Keras transfer-learning guide written by hand
(`base_model.trainable = False`, `model.fit` on the images every epoch); keras_transfer runs the backbone
once (`train_head_cached`) and trains the head on the cached features. Both timings include everything
from the images to a trained model; they alternate over `--repeats` and the script prints the medians
and their ratio (goal: >= 10x faster).

Memory: features for N and 4N images streamed to a disk cache (images generated batch by batch, so the
source is never in memory) and the head trained on them read back through a memory map; the script
prints the RSS growth (peak during the run minus before) of each, and of a 4N in-memory cache for contrast,
both in total and anonymous (without the file-backed pages of the memory map, which the kernel can drop).

    KERAS_BACKEND=tensorflow python benchmarks/caching.py
    KERAS_BACKEND=jax python benchmarks/caching.py --images 512 --repeats 5 --memory-images 4000
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_transfer as kt  # noqa: E402
from keras_transfer.training.caching import train_head_cached  # noqa: E402
from overhead import hand_written  # noqa: E402


def guide_frozen(spec, size, classes, x, y, epochs):
    keras.utils.set_random_seed(0)
    model = hand_written(spec, size, classes)
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)


def cached(spec, size, classes, x, y, epochs):
    keras.utils.set_random_seed(0)
    model = kt.build_classifier(spec.name, classes, weights=None, input_size=size, augmentation="none")
    train_head_cached(model, (x, y), epochs=epochs, verbose=0)


def rss_mb():
    """(resident, anonymous) MB. Anonymous = resident - file-backed/shared pages: what the kernel cannot drop.
    Pages of a memory-mapped feature file that training has read count as resident but not as anonymous."""
    with open("/proc/self/statm") as f:
        resident, shared = (int(v) for v in f.read().split()[1:3])
    page = os.sysconf("SC_PAGE_SIZE") / 2**20
    return resident * page, (resident - shared) * page


def peak_growth_mb(fn):
    """Runs `fn()` and returns the peak growth (during it, over before) of (RSS, anonymous RSS), sampled every 5 ms."""
    before, peak, done = rss_mb(), [0.0, 0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[:] = map(max, peak, rss_mb())
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    peak[:] = map(max, peak, rss_mb())
    return peak[0] - before[0], peak[1] - before[1]


def generated(images, size, batch=64):
    """A dataset of random images made batch by batch: its size in memory does not grow with `images`."""
    def gen():
        rng = np.random.default_rng(0)
        for start in range(0, images, batch):
            n = min(batch, images - start)
            yield rng.uniform(0, 255, (n, size, size, 3)).astype("float32"), rng.integers(0, 10, n).astype("int32")
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32), tf.TensorSpec((None,), tf.int32))
    return tf.data.Dataset.from_generator(gen, output_signature=spec)


def memory_test(args):
    model = kt.build_classifier(args.backbone, 10, weights=None, input_size=args.memory_size, augmentation="none")
    dim = model.get_layer("predictions").input.shape[-1]
    n = args.memory_images
    train_head_cached(model, generated(64, args.memory_size), epochs=1, verbose=0)  # warm-up: compile, trace
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, images, cache in (("disk N", n, folder), ("disk 4N", 4 * n, folder), ("memory 4N", 4 * n, "memory")):
            results[label] = peak_growth_mb(lambda: train_head_cached(
                model, generated(images, args.memory_size), epochs=1, cache=cache, verbose=0))
    print(f"memory: backbone={args.backbone} size={args.memory_size} feature_dim={dim} N={n} "
          f"(4N features = {4 * n * dim * 4 / 2**20:.1f} MB)")
    print("memory: peak RSS growth " + ", ".join(f"{k} {v[0]:.1f} MB" for k, v in results.items()))
    print("memory: peak anonymous RSS growth (without file-backed pages) "
          + ", ".join(f"{k} {v[1]:.1f} MB" for k, v in results.items()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="speed repeats (0: memory test only)")
    parser.add_argument("--memory-images", type=int, default=2000, help="N of the memory test (0: skip it)")
    parser.add_argument("--memory-size", type=int, default=32)
    args = parser.parse_args()
    spec = kt.get_backbone_spec(args.backbone)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.images, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 10, args.images).astype("int32")
    if args.repeats == 0:  # memory test only
        return memory_test(args)
    runs = {"keras guide (frozen, fit on images)": guide_frozen, "keras_transfer cached": cached}
    times = {name: [] for name in runs}
    for name, fn in runs.items():  # warm-up
        fn(spec, args.size, 10, x[:64], y[:64], 1)
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn(spec, args.size, 10, x, y, args.epochs)
            times[name].append(time.perf_counter() - start)
    base, mine = (statistics.median(t) for t in times.values())
    print(f"backend={keras.backend.backend()} backbone={spec.name} size={args.size} images={args.images} "
          f"epochs={args.epochs} repeats={args.repeats}")
    print(f"speed: median keras guide {base:.2f} s, keras_transfer cached {mine:.2f} s, speed-up {base / mine:.1f}x")
    if args.memory_images:
        memory_test(args)


if __name__ == "__main__":
    main()
