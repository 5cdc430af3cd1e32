"""Real regression and multi-label data from scikit-learn's handwritten digits (8x8 scans), written as the
manifests a user brings; every label comes from the scans' own labels, none is random.

- regression: each digit image with its value as a number (`path,value`): "how much" read from the pixels;
- multi-label: 2x2 tiles of four real digits in one image, its labels the set of digits present
  (`path,labels` with labels joined by `|`).
"""

import csv
import os

import numpy as np
from PIL import Image

from keras_transfer.errors import KerasTransferError


def _digits():
    try:
        from sklearn.datasets import load_digits  # optional (the demo extra)
    except ImportError:
        raise KerasTransferError("Digit data need scikit-learn (its bundled digits). Install it with: "
                                 "pip install 'keras-transfer[demo]'") from None
    digits = load_digits()
    return (digits.images / 16.0 * 255.0).astype(np.uint8), digits.target


def _save(pixels, path, size):
    Image.fromarray(pixels).resize((size, size), Image.BILINEAR).convert("RGB").save(path)


def write_digit_values(directory, *, n=None, size=32, seed=0):
    """Writes `n` digit images (all 1,797 by default, in a seeded order) and `values.csv` (`path,value`); returns
    the manifest's path."""
    images, labels = _digits()
    order = np.random.default_rng(seed).permutation(len(labels))[:n]
    os.makedirs(os.path.join(directory, "images"), exist_ok=True)
    rows = []
    for i in order:
        name = os.path.join("images", f"digit_{i:04d}.png")
        _save(images[i], os.path.join(directory, name), size)
        rows.append((name, int(labels[i])))
    return _write_csv(os.path.join(directory, "values.csv"), ("path", "value"), rows)


def write_digit_tiles(directory, *, n=400, size=32, seed=0, digits=tuple(range(10))):
    """Writes `n` images, each a 2x2 tile of four real digit scans drawn from `digits`, and `tags.csv`
    (`path,labels`, the set of digits present joined by `|`); returns the manifest's path."""
    images, labels = _digits()
    pool = np.flatnonzero(np.isin(labels, digits))
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(directory, "tiles"), exist_ok=True)
    rows = []
    for t in range(n):
        picks = rng.choice(pool, 4, replace=False)
        tile = np.block([[images[picks[0]], images[picks[1]]], [images[picks[2]], images[picks[3]]]])
        name = os.path.join("tiles", f"tile_{t:04d}.png")
        _save(tile, os.path.join(directory, name), size)
        rows.append((name, "|".join(str(d) for d in sorted({int(labels[p]) for p in picks}))))
    return _write_csv(os.path.join(directory, "tags.csv"), ("path", "labels"), rows)


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
