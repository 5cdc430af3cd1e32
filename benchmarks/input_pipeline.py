"""The input pipeline against Keras's own loader (`keras.utils.image_dataset_from_directory` + prefetch), in the
same run, on folders of JPEG photos (benchmarks/photos.py: crops of real photos, 375 x 500, 10 classes).

For each data size it prints, as medians over interleaved repeats and as ratios keras_transfer / Keras:
- the scan: `find_images` (a listing plus a header read per file) against a plain listing (`os.walk`) and
  against the set-up of Keras's loader (its own listing and labelling);
- class counting: `find_images` + `split_images` + the summary on the same files in 10 and in 1,000 classes;
- one epoch at 224 px, iterating the batches (no model): CPU ms per image (process time, every thread), images
  per second with tf.data's private thread pool at 1 and 2 threads, and the scaling between them;
- the first epoch from nothing: scan + pipeline + one full pass, in a fresh process;
- peak RSS growth of those processes, and of keras_transfer with a disk cache over two epochs;
- the CPU cores needed to feed 2,500 images/s (a GPU training ResNet50), from the CPU per image.
Each measurement runs in its own process (clean RSS; the page cache is warm after the first repeat).

    KERAS_BACKEND=tensorflow python benchmarks/input_pipeline.py --sizes 1000 16000
    python benchmarks/input_pipeline.py --sizes 64000 --repeats 1 --workers 2
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from photos import photo_folder, relinked  # noqa: E402

GPU_RATE = 2500  # images/s of one modern GPU training ResNet50


def _rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _dataset(loader, folder, size, batch, cache):
    if loader == "keras":
        import keras
        import tensorflow as tf

        return keras.utils.image_dataset_from_directory(folder, image_size=(size, size), batch_size=batch,
                                                        shuffle=True, seed=1, verbose=False).prefetch(tf.data.AUTOTUNE)
    from keras_transfer.data.sources import load_image_folder

    return load_image_folder(folder, image_size=size, batch_size=batch, validation_split=0.0, seed=1,
                             cache=cache).train


def child(args):
    """One loader in this process: setup, `epochs` passes; prints a JSON line."""
    import tensorflow as tf

    import keras_transfer  # noqa: F401 (its import cost is not the loader's)

    base_rss, start = _rss_mb(), time.perf_counter()
    dataset = _dataset(args.loader, args.folder, args.size, args.batch, args.cache)
    if args.workers:
        options = tf.data.Options()
        options.threading.private_threadpool_size = args.workers
        options.threading.max_intra_op_parallelism = 1
        dataset = dataset.with_options(options)
    setup = time.perf_counter() - start
    epochs = []
    for _ in range(args.epochs):
        cpu, wall, images = time.process_time(), time.perf_counter(), 0
        for x, _ in dataset:
            images += int(x.shape[0])
        epochs.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "images": images})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"setup": setup, "first_epoch": setup + epochs[0]["wall"], "epochs": epochs,
                      "rss_growth_mb": peak - base_rss}))


def run_child(loader, folder, *, size, batch, workers=0, epochs=1, cache=None):
    command = [sys.executable, os.path.abspath(__file__), "--child", "--loader", loader, "--folder", folder,
               "--size", str(size), "--batch", str(batch), "--workers", str(workers), "--epochs", str(epochs)]
    if cache:
        command += ["--cache", cache]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{loader} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def listing(folder):
    from keras_transfer.data.images import is_image_name

    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if is_image_name(f)]


def scan_and_split(folder):
    from keras_transfer.data.sources import find_images
    from keras_transfer.data.splits import split_images, summarize

    found = find_images(folder)
    summarize(split_images(found, validation_split=0.2))
    return found


def keras_index(folder):
    import keras

    keras.utils.image_dataset_from_directory(folder, image_size=(224, 224), verbose=False)


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def median(values):
    return statistics.median(values) if values else float("nan")


def measure(n, args):
    folder = photo_folder(os.path.join(args.data_root, f"photos-{n}"), n)
    print(f"\n== {n} images ({folder}) ==", flush=True)
    listed, indexed, scanned = [], [], []
    for _ in range(args.repeats):
        listed.append(timed(listing, folder))
        indexed.append(timed(keras_index, folder))
        scanned.append(timed(scan_and_split, folder))
    print(f"scan: listing (os.walk) {median(listed):.3f} s, Keras's loader set-up {median(indexed):.3f} s, "
          f"find_images + split {median(scanned):.3f} s; ratios {median(scanned) / median(listed):.2f}x the "
          f"listing, {median(scanned) / median(indexed):.2f}x Keras (goal <= 3x)", flush=True)
    if n >= 10000:
        many = relinked(folder, os.path.join(args.data_root, f"photos-{n}-1000-classes"), 1000)
        count = [timed(scan_and_split, many) for _ in range(args.repeats)]
        print(f"class counting: 10 classes {median(scanned):.3f} s, 1,000 classes {median(count):.3f} s, "
              f"ratio {median(count) / median(scanned):.2f}x (linear: ~1x)", flush=True)
    if args.scan_only:
        return
    results = {}
    for workers in args.workers:
        for _ in range(args.repeats):
            for loader in ("keras", "kt"):
                got = run_child(loader, folder, size=args.size, batch=args.batch, workers=workers)
                results.setdefault((loader, workers), []).append(got)
    firsts = {loader: [run_child(loader, folder, size=args.size, batch=args.batch) for _ in range(args.repeats)]
              for loader in ("keras", "kt")}
    rows = {}
    for loader in ("keras", "kt"):
        row = {}
        for workers in args.workers:
            epochs = [r["epochs"][0] for r in results[(loader, workers)]]
            row[f"cpu_ms_{workers}"] = median([e["cpu"] / e["images"] * 1e3 for e in epochs])
            row[f"rate_{workers}"] = median([e["images"] / e["wall"] for e in epochs])
        row["first_epoch"] = median([r["first_epoch"] for r in firsts[loader]])
        row["rss"] = median([r["rss_growth_mb"] for r in firsts[loader]])
        rows[loader] = row
    def line(name, key, unit, fmt="{:.3f}"):
        k, t = rows["keras"][key], rows["kt"][key]
        print(f"{name:34s} Keras {fmt.format(k)} {unit:6s} keras_transfer {fmt.format(t)} {unit:6s} "
              f"ratio {t / k:.2f}", flush=True)
    for workers in args.workers:
        line(f"CPU per image, {workers} thread(s)", f"cpu_ms_{workers}", "ms")
        line(f"images/s, {workers} thread(s)", f"rate_{workers}", "img/s", "{:.0f}")
    if len(args.workers) > 1:
        a, b = args.workers[0], args.workers[-1]
        for loader in ("keras", "kt"):
            print(f"scaling {a} -> {b} threads, {loader}: {rows[loader][f'rate_{b}'] / rows[loader][f'rate_{a}']:.2f}x")
    line("first epoch (scan + one pass)", "first_epoch", "s")
    line("peak RSS growth, one epoch", "rss", "MB", "{:.0f}")
    cpu = rows["kt"][f"cpu_ms_{args.workers[-1]}"]
    print(f"cores to feed {GPU_RATE} img/s: keras_transfer {GPU_RATE * cpu / 1e3:.1f}, Keras "
          f"{GPU_RATE * rows['keras'][f'cpu_ms_{args.workers[-1]}'] / 1e3:.1f}", flush=True)
    if args.disk_cache:
        cache = os.path.join(args.data_root, f"cache-{n}-{os.getpid()}")
        try:
            got = run_child("kt", folder, size=args.size, batch=args.batch, epochs=2, cache=cache)
        finally:
            for name in os.listdir(args.data_root):
                if name.startswith(os.path.basename(cache)):
                    os.remove(os.path.join(args.data_root, name))
        size_gb = n * args.size * args.size * 3 / 1e9
        print(f"disk cache ({size_gb:.1f} GB of uint8 images), two epochs: peak RSS growth {got['rss_growth_mb']:.0f} MB; "
              f"epoch 2 {got['epochs'][1]['images'] / got['epochs'][1]['wall']:.0f} img/s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 16000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="tf.data private thread pool sizes")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--data-root", default="/tmp/kt_bench_photos", help="photo folders are written here once")
    parser.add_argument("--no-disk-cache", dest="disk_cache", action="store_false")
    parser.add_argument("--scan-only", action="store_true", help="only the scan and class counting")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loader", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.workers = args.workers[0] if isinstance(args.workers, list) else args.workers
        return child(args)
    os.makedirs(args.data_root, exist_ok=True)
    import keras_transfer  # noqa: F401 (imported before any timing: its import is nobody's scan time)
    print(f"cores: {os.cpu_count()}; images {args.size} px, batch {args.batch}; medians of {args.repeats}")
    for n in args.sizes:
        measure(n, args)


if __name__ == "__main__":
    main()
