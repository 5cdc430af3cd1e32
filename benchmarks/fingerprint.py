"""Cost of the data fingerprint that resume compares (size + BLAKE2b of each file's content), against listing
the same files with `os.stat` (what a size + mtime check would cost), on N JPEG files.

    python benchmarks/fingerprint.py --files 10000

Prints medians over repeats (the two alternate, so machine noise hits both) and their ratio. The files are
read from the page cache after the first repeat, as they are at resume time right after the data scan.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keras_transfer.data.fingerprint import fingerprint  # noqa: E402
from photos import photo_files  # noqa: E402


def stat_all(paths):
    return {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = photo_files(folder, args.files, height=160, width=160)
        total = sum(os.path.getsize(p) for p in paths)
        times = {"stat": [], "fingerprint": []}
        for _ in range(args.repeats):
            for name, fn in (("stat", stat_all), ("fingerprint", fingerprint)):
                start = time.perf_counter()
                fn(paths)
                times[name].append(time.perf_counter() - start)
        base, ours = statistics.median(times["stat"]), statistics.median(times["fingerprint"])
        print(f"{args.files} files, {total / 1e6:.0f} MB; median of {args.repeats}: os.stat listing {base:.3f} s, "
              f"fingerprint {ours:.3f} s ({ours / args.files * 1e6:.0f} us/file, {total / ours / 1e6:.0f} MB/s); "
              f"ratio {ours / base:.1f}x")


if __name__ == "__main__":
    main()
