"""Feature caching: head training on cached features vs the Keras guide's frozen-backbone training.

Speed: the same data, the same epochs, at each of `--images` (default 256, 1024 and 4096), each without and
with validation data (`--val-fraction` more images, 20% by default, given as `validation_data` to both).
The baseline is the Keras transfer-learning guide written by hand (`base_model.trainable = False`,
`model.fit` on the images every epoch); keras_transfer runs the backbone once (`train_head_cached`) and
trains the head on the cached features. Both timings include everything from the images to a trained
model; they alternate over `--repeats` and the script prints, per setting, the medians, their ratio (goal:
>= 9x at 1,024 images and 10 epochs) and the cached run's split: before the head's `fit` (building,
compiling, the backbone over every image) and the head's `fit` itself, with its ms a step.
`--head-batch-size` trains the head on larger batches (opt-in in keras_transfer: other steps than the
uncached phase's).

Memory: features for N and 4N images streamed to a disk cache (images generated batch by batch, so the
source is never in memory) and the head trained on them read back through a memory map; the script
prints the RSS growth (peak during the run minus before) of each, and of a 4N in-memory cache for contrast,
both in total and anonymous (without the file-backed pages of the memory map, which the kernel can drop).

    KERAS_BACKEND=tensorflow python benchmarks/caching.py
    KERAS_BACKEND=jax python benchmarks/caching.py --images 256 1024 --repeats 2 --memory-images 0
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


def guide_frozen(spec, size, classes, x, y, epochs, val=None, head_batch_size=None):
    keras.utils.set_random_seed(0)
    model = hand_written(spec, size, classes)
    model.fit(x, y, batch_size=32, epochs=epochs, validation_data=val, verbose=0)


class HeadTimer(keras.callbacks.Callback):
    """Records when the head's `fit` starts and ends, and its steps."""

    def on_train_begin(self, logs=None):
        self.begin, self.steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_train_end(self, logs=None):
        self.end = time.perf_counter()


def cached(spec, size, classes, x, y, epochs, val=None, head_batch_size=None):
    """Returns `(seconds before the head's fit, seconds of the head's fit, its steps)`."""
    start, timer = time.perf_counter(), HeadTimer()
    keras.utils.set_random_seed(0)
    model = kt.build_classifier(spec.name, classes, weights=None, input_size=size, augmentation="none")
    # patience = epochs: early stopping on the validation loss would end the run before the guide's epochs
    preset = kt.get_preset("feature_extraction", epochs=epochs, patience=epochs)
    train_head_cached(model, (x, y), val, preset=preset, verbose=0, callbacks=[timer], head_batch_size=head_batch_size)
    return timer.begin - start, timer.end - timer.begin, timer.steps


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


def speed_test(args, spec):
    """Times the baseline and the cached path at each size, without and with validation data; prints a table."""
    rng = np.random.default_rng(0)
    rows = []
    for images in args.images:
        n_val = round(images * args.val_fraction)
        x = rng.uniform(0, 255, (images + n_val, args.size, args.size, 3)).astype("float32")
        y = rng.integers(0, 10, images + n_val).astype("int32")
        for with_val in (False, True) if n_val else (False,):  # no empty validation set
            val = (x[images:], y[images:]) if with_val else None
            runs = {"guide": guide_frozen, "cached": cached}
            small_val = None if val is None else (val[0][:16], val[1][:16])
            for fn in runs.values():  # warm-up: imports, first traces
                fn(spec, args.size, 10, x[:64], y[:64], 1, small_val, args.head_batch_size)
            times, splits = {name: [] for name in runs}, []
            for _ in range(args.repeats):
                for name, fn in runs.items():
                    start = time.perf_counter()
                    split = fn(spec, args.size, 10, x[:images], y[:images], args.epochs, val, args.head_batch_size)
                    times[name].append(time.perf_counter() - start)
                    if name == "cached":
                        splits.append(split)
            base, mine = (statistics.median(t) for t in times.values())
            before, head = (statistics.median(s[i] for s in splits) for i in (0, 1))
            steps = splits[0][2]
            rows.append((images, f"{n_val}" if with_val else "-", base, mine, base / mine, before, head,
                         head / steps * 1000))
            print(f"  images={images} val={rows[-1][1]}: guide {base:.2f} s, cached {mine:.2f} s "
                  f"({base / mine:.1f}x); cached split: {before:.2f} s before the head's fit, head fit {head:.2f} s "
                  f"({steps} steps, {head / steps * 1000:.2f} ms/step)", flush=True)
    print(f"backend={keras.backend.backend()} backbone={spec.name} size={args.size} epochs={args.epochs} "
          f"repeats={args.repeats} head_batch_size={args.head_batch_size or 'source (32)'}")
    print("| images | validation images | guide frozen fit (s) | cached (s) | speed-up | cached: before head fit (s) "
          "| cached: head fit (s) | head ms/step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.1f}x | {r[5]:.2f} | {r[6]:.2f} | {r[7]:.2f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--images", type=int, nargs="+", default=[256, 1024, 4096], help="training set sizes")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="validation images, a fraction of the training images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="speed repeats (0: memory test only)")
    parser.add_argument("--head-batch-size", type=int, default=None, help="keras_transfer's head batch (default: the source's, 32)")
    parser.add_argument("--memory-images", type=int, default=2000, help="N of the memory test (0: skip it)")
    parser.add_argument("--memory-size", type=int, default=32)
    args = parser.parse_args()
    if args.repeats:
        speed_test(args, kt.get_backbone_spec(args.backbone))
    if args.memory_images:
        memory_test(args)


if __name__ == "__main__":
    main()
