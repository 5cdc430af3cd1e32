"""Writers of the odd image files real folders hold: damaged, mislabelled, RGBA, grayscale, 16-bit,
palette, WebP, EXIF-rotated. Shared by test_images, test_data and test_pipeline."""

import os

import numpy as np
from PIL import Image


def pixels(height=20, width=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write_png(path, height=20, width=24, seed=0):
    Image.fromarray(pixels(height, width, seed)).save(path)
    return str(path)


def write_jpeg(path, height=20, width=24, seed=0):
    Image.fromarray(pixels(height, width, seed)).save(path, quality=95)
    return str(path)


def write_corrupt_jpeg(path, seed=0):
    """A JPEG whose headers are intact up to the start of scan, followed by random bytes."""
    write_jpeg(path, seed=seed)
    data = open(path, "rb").read()
    start = data.index(b"\xff\xda")
    garbage = np.random.default_rng(seed).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(data[:start + 14] + garbage)
    return str(path)


def write_truncated_png(path, seed=0):
    write_png(path, seed=seed)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    return str(path)


def write_text_as_jpeg(path):
    with open(path, "w") as f:
        f.write("this is not an image\n")
    return str(path)


def write_rgba_png(path, seed=0):
    rgba = np.concatenate([pixels(seed=seed), np.full((20, 24, 1), 128, np.uint8)], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(path)
    return str(path)


def write_gray_jpeg(path, seed=0):
    Image.fromarray(pixels(seed=seed)[..., 0], mode="L").save(path, quality=95)
    return str(path)


def write_16bit_png(path, seed=0):
    values = np.random.default_rng(seed).integers(0, 65536, size=(20, 24)).astype(np.uint16)
    Image.fromarray(values.astype(np.int32), mode="I").convert("I;16").save(path)
    return str(path), values


def write_messy_folder(root):
    """Two good classes holding every odd file, an empty class, and ignorable files.

    Returns `(root, bad_paths)`: the three files that cannot be decoded.
    """
    for name in ("cat", "dog", "empty"):
        os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(3):
        write_png(os.path.join(root, "cat", f"ok_{i}.png"), seed=i)
        write_jpeg(os.path.join(root, "dog", f"ok_{i}.jpg"), seed=10 + i)
    write_rgba_png(os.path.join(root, "cat", "rgba.png"))
    write_gray_jpeg(os.path.join(root, "dog", "gray.jpg"))
    write_16bit_png(os.path.join(root, "dog", "deep.png"))
    bad = [write_corrupt_jpeg(os.path.join(root, "cat", "corrupt.jpg")),
           write_truncated_png(os.path.join(root, "dog", "truncated.png")),
           write_text_as_jpeg(os.path.join(root, "cat", "text.jpg"))]
    with open(os.path.join(root, "cat", "notes.txt"), "w") as f:
        f.write("ignored")
    write_png(os.path.join(root, "dog", ".hidden.png"))
    os.makedirs(os.path.join(root, "cat", ".thumbs"))
    write_png(os.path.join(root, "cat", ".thumbs", "t.png"))
    write_text_as_jpeg(os.path.join(root, "README.txt"))
    write_text_as_jpeg(os.path.join(root, ".DS_Store"))
    return str(root), sorted(os.path.abspath(p) for p in bad)
