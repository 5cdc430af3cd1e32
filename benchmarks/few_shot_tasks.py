"""Few-shot image tasks built from real images that ship in installed packages (no network).

Every label comes from the source itself: a digit's label from scikit-learn, a texture's or a photo's label is the
file a crop was cut from, a face/non-face label from scikit-image's documented order of `lfw_subset.npy`.
Test images never share a pixel with training or validation images: they come from other files (digits, faces)
or from a region of each photo that training and validation crops do not touch (textures, photos). Training and
validation are disjoint the same way, so the validation score that picks a probe's C or stops training early is
not inflated by overlapping crops.

    task = build_task("textures", k=5, test_per_class=50, seed=0)
    task.x_train.shape, task.y_train, task.class_names, task.source

`regions[split]` records where each image came from, one row per image: `(source, top, left, bottom, right)` in
the source image's pixels (for digits and faces `source` is the file's index and the box its whole image).

Needs scikit-learn (`pip install scikit-learn`) and, for textures, photos and faces, the files scikit-image ships
(`pip install --no-deps scikit-image`: only its data folder is read, so its own dependencies are not needed).
"""

import dataclasses
import importlib.util
import os

import numpy as np
from PIL import Image

TASKS = ("digits", "textures", "photos", "faces")
SPLITS = ("train", "val", "test")
TEXTURES = ("brick", "grass", "gravel")
PHOTOS = ("china.jpg", "flower.jpg", "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
          "motorcycle_left.png", "hubble_deep_field.jpg")  # the first two from scikit-learn, the rest scikit-image
CROP = 64  # side of a crop in the source image's pixels, before resizing to `size`
MARGIN = 16  # pixels between the regions of two splits, so even blurred edges are not shared
LFW_FACES = 100  # skimage.data.lfw_subset's docstring: "100 first images are faces and subsequent 100 are non-faces"


@dataclasses.dataclass
class FewShotTask:
    """A task's arrays (RGB float32 in [0, 255], `(n, size, size, 3)`; int32 labels), names and provenance."""

    name: str
    class_names: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    regions: dict  # split -> int array (n, 5): source, top, left, bottom, right


def build_task(name, *, k, val_per_class=None, test_per_class, size=32, seed):
    """Builds task `name` (one of `TASKS`): `k` training, `val_per_class` (default `k`) validation and
    `test_per_class` test images per class, at `size` px; the same seed, the same arrays."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; the tasks are {', '.join(TASKS)}. Received: name={name!r}")
    val_per_class = k if val_per_class is None else val_per_class
    for arg, value, least in (("k", k, 1), ("val_per_class", val_per_class, 1), ("test_per_class", test_per_class, 1),
                              ("size", size, 8)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{arg} must be an integer >= {least}. Received: {arg}={value!r}")
    counts = {"train": int(k), "val": int(val_per_class), "test": int(test_per_class)}
    rng = np.random.default_rng(seed)
    builder = {"digits": _digits, "textures": _textures, "photos": _photos, "faces": _faces}[name]
    return builder(counts, int(size), rng)


def _digits(counts, size, rng):
    try:
        from sklearn.datasets import load_digits  # optional: only this task needs it
    except ImportError:
        raise ModuleNotFoundError("The 'digits' task needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    images = [_to_rgb((image / 16.0 * 255.0).astype(np.uint8), size) for image in digits.images]
    source = ("scikit-learn's load_digits: 1,797 real 8x8 handwritten digit scans, labels from the dataset, "
              f"upscaled bilinearly to {size} px; train, validation and test are disjoint sets of scans.")
    return _from_files("digits", [str(d) for d in range(10)], images, digits.target, counts, rng, source,
                       digits.images.shape[1:])


def _faces(counts, size, rng):
    path = os.path.join(skimage_data_folder("faces"), "lfw_subset.npy")
    stack = np.load(path)  # (200, 25, 25) floats in [0, 1]
    images = [_to_rgb((image * 255.0).round().astype(np.uint8), size) for image in stack]
    labels = (np.arange(len(stack)) >= LFW_FACES).astype(int)
    source = ("scikit-image's lfw_subset.npy: 200 real 25x25 grayscale crops from Labeled Faces in the Wild, "
              "the first 100 faces and the last 100 background crops (non-faces), as skimage.data.lfw_subset "
              f"documents; resized to {size} px; train, validation and test are disjoint sets of crops.")
    return _from_files("faces", ["face", "non_face"], images, labels, counts, rng, source, stack.shape[1:])


def _from_files(name, class_names, images, labels, counts, rng, source, shape):
    """Draws disjoint per-class sets of whole images for the three splits; `shape`: the files' own (height, width)."""
    height, width = shape
    labels = np.asarray(labels)
    need = sum(counts.values())
    picked = {split: [] for split in SPLITS}
    for label in range(len(class_names)):
        members = np.flatnonzero(labels == label)
        if len(members) < need:
            raise ValueError(f"Task {name!r}: class {class_names[label]!r} has {len(members)} images, fewer than "
                             f"k + val_per_class + test_per_class = {need}. Received: {_received(counts)}")
        order = rng.permutation(members)
        start = 0
        for split in SPLITS:
            picked[split].extend(order[start:start + counts[split]])
            start += counts[split]
    arrays, regions = {}, {}
    for split in SPLITS:
        index = np.asarray(picked[split], dtype=int)
        arrays[split] = (np.stack([images[i] for i in index]).astype("float32"), labels[index].astype("int32"))
        zero = np.zeros_like(index)
        regions[split] = np.stack([index, zero, zero, zero + height, zero + width], axis=1)
    return _task(name, class_names, arrays, regions, source)


def _textures(counts, size, rng):
    folder = skimage_data_folder("textures")
    images = [np.asarray(Image.open(os.path.join(folder, f"{t}.png")).convert("RGB")) for t in TEXTURES]
    source = (f"scikit-image's real texture photos {', '.join(t + '.png' for t in TEXTURES)} (512x512 grayscale, "
              f"as RGB); label = the photo a {CROP} px crop was cut from, resized to {size} px; training crops "
              f"from the top-left quarter, validation from the top-right, test from the bottom half "
              f"({MARGIN} px apart: no pixel shared).")
    return _from_crops("textures", list(TEXTURES), images, "vertical", counts, size, rng, source)


def _photos(counts, size, rng):
    try:
        from sklearn.datasets import load_sample_images  # optional: only this task needs it
    except ImportError:
        raise ModuleNotFoundError("The 'photos' task needs scikit-learn: pip install scikit-learn") from None
    sample = load_sample_images()
    folder = skimage_data_folder("photos")
    images = list(sample.images) + [np.asarray(Image.open(os.path.join(folder, f)).convert("RGB")) for f in PHOTOS[2:]]
    names = [os.path.splitext(f)[0] for f in PHOTOS]
    source = ("which photo is this patch from: real colour photos, china and flower from scikit-learn's "
              f"load_sample_images, {', '.join(PHOTOS[2:])} from scikit-image; label = the photo a {CROP} px crop "
              f"was cut from, resized to {size} px; training crops from the left half's top, validation from "
              f"its bottom, test from the right half ({MARGIN} px apart: no pixel shared).")
    return _from_crops("photos", names, images, "horizontal", counts, size, rng, source)


def split_regions(height, width, cut):
    """Three disjoint boxes `(top, left, bottom, right)` for train, val and test. `cut="vertical"`: test is the
    bottom half, train/val split the top half left/right; `"horizontal"`: test is the right half, train/val split
    the left half top/bottom. Neighbouring boxes are `MARGIN` px apart."""
    if cut == "vertical":
        top, half = _halves(height)
        left, right = _halves(width)
        return {"train": (0, 0, top, left), "val": (0, right, top, width), "test": (half, 0, height, width)}
    top, bottom = _halves(height)
    left, half = _halves(width)
    return {"train": (0, 0, top, left), "val": (bottom, 0, height, left), "test": (0, half, height, width)}


def _halves(length):
    """The end of the first part and the start of the second, `MARGIN` apart around the middle."""
    return length // 2 - MARGIN // 2, length // 2 + MARGIN - MARGIN // 2


def _from_crops(name, class_names, images, cut, counts, size, rng, source):
    """Random `CROP` px crops, each split's from its own region of every image (`split_regions`)."""
    arrays, regions = {}, {}
    for split in SPLITS:
        crops, labels, boxes = [], [], []
        for label, image in enumerate(images):
            top, left, bottom, right = split_regions(*image.shape[:2], cut)[split]
            if bottom - top < CROP or right - left < CROP:
                raise ValueError(f"Task {name!r}: image {class_names[label]!r} ({image.shape[1]}x{image.shape[0]}) "
                                 f"has no room for a {CROP} px {split} crop. Received: cut={cut!r}")
            for _ in range(counts[split]):
                y = int(rng.integers(top, bottom - CROP + 1))
                x = int(rng.integers(left, right - CROP + 1))
                crops.append(_to_rgb(image[y:y + CROP, x:x + CROP], size))
                labels.append(label)
                boxes.append((label, y, x, y + CROP, x + CROP))
        arrays[split] = (np.stack(crops).astype("float32"), np.asarray(labels, dtype="int32"))
        regions[split] = np.asarray(boxes, dtype=int)
    return _task(name, class_names, arrays, regions, source)


def _task(name, class_names, arrays, regions, source):
    return FewShotTask(name=name, class_names=list(class_names), x_train=arrays["train"][0], y_train=arrays["train"][1],
                       x_val=arrays["val"][0], y_val=arrays["val"][1], x_test=arrays["test"][0],
                       y_test=arrays["test"][1], source=source, regions=regions)


def _to_rgb(pixels, size):
    """uint8 grayscale or RGB pixels -> RGB uint8 array at `size` x `size` (PIL bilinear, as the demo does)."""
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR).convert("RGB"))


def skimage_data_folder(task):
    """The data folder of the installed scikit-image, found without importing it (its import needs packages
    this project does not install; only the files are read)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"The {task!r} task needs the images scikit-image ships: "
                                  "pip install --no-deps scikit-image")
    return os.path.join(spec.submodule_search_locations[0], "data")


def _received(counts):
    return f"k={counts['train']}, val_per_class={counts['val']}, test_per_class={counts['test']}"
