"""Folders of JPEG files cut from real photos (the two that scikit-learn ships), for the data benchmarks.

Each file is a random crop of 375 x 500 pixels (a typical photo folder's size after a camera's downscale),
sometimes mirrored, saved at quality 90: natural content, so decoding and resizing cost what they cost on
users' photos. `photo_folder` writes once and reuses the folder (a marker file records what it holds).
"""

import os

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 375, 500


def _photos():
    from sklearn.datasets import load_sample_images

    return [np.asarray(photo) for photo in load_sample_images().images]


def write_photo(path, photos, rng, height=HEIGHT, width=WIDTH):
    photo = photos[int(rng.integers(len(photos)))]
    top, left = rng.integers(0, photo.shape[0] - height + 1), rng.integers(0, photo.shape[1] - width + 1)
    crop = photo[top:top + height, left:left + width]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    Image.fromarray(np.ascontiguousarray(crop)).save(path, quality=90)


def photo_folder(root, images, classes=10, seed=0):
    """`root` holding `images` JPEG photos in `classes` class subfolders (`c000/`, ...); written once."""
    marker = os.path.join(root, f".complete-{images}-{classes}-{seed}")
    if os.path.exists(marker):
        return root
    photos, rng = _photos(), np.random.default_rng(seed)
    for c in range(classes):
        os.makedirs(os.path.join(root, f"c{c:03d}"), exist_ok=True)
    for i in range(images):
        write_photo(os.path.join(root, f"c{i % classes:03d}", f"img_{i:06d}.jpg"), photos, rng)
    open(marker, "w").close()
    return root


def photo_files(folder, images, seed=0, height=HEIGHT, width=WIDTH):
    """`images` photo JPEG files written straight into `folder`; returns their paths."""
    photos, rng = _photos(), np.random.default_rng(seed)
    paths = [os.path.join(folder, f"{i:06d}.jpg") for i in range(images)]
    for path in paths:
        write_photo(path, photos, rng, height, width)
    return paths


def relinked(root, target, classes):
    """The files of `root` hard-linked into `classes` class folders under `target` (the same bytes, more
    classes): for timing class counting."""
    marker = os.path.join(target, f".complete-{classes}")
    if os.path.exists(marker):
        return target
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names if f.endswith(".jpg"))
    for i, path in enumerate(files):
        folder = os.path.join(target, f"k{i % classes:04d}")
        os.makedirs(folder, exist_ok=True)
        link = os.path.join(folder, os.path.basename(path))
        if not os.path.exists(link):
            os.link(path, link)
    open(marker, "w").close()
    return target
