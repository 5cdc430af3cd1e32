"""Splits labelled images into train/val/test (stratified, seeded, pure numpy), summarises the data and
computes balanced class weights."""

import dataclasses

import numpy as np

from keras_transfer.errors import KerasTransferError

SPLITS = ("train", "val", "test")
DEFAULT_BATCH = 32
MIN_STEPS_PER_EPOCH = 4


def batch_for(images, batch_size=None, largest=DEFAULT_BATCH):
    """`batch_size` if given; else `largest` (32), at most `images / 4` (so an epoch has at least 4 steps), at
    least 1. (A set of 12 at batch 16 would train one step, then run one validation pass, 300 times over.)"""
    if batch_size is not None:
        return batch_size
    return max(1, min(largest, images // MIN_STEPS_PER_EPOCH))


@dataclasses.dataclass
class Splits:
    """`(path, label)` pairs per split (`"train"`, `"val"`, `"test"`) and where they came from."""

    class_names: list
    parts: dict
    images: object = None
    seed: int = None
    validation_split: float = 0.0
    test_split: float = 0.0

    def paths(self, split):
        return [path for path, _ in self.parts[split]]

    def labels(self, split):
        return [label for _, label in self.parts[split]]

    def counts(self, split):
        """`{class_name: count}` in `split`, every class listed (one pass over the labels)."""
        counts = np.bincount(np.asarray(self.labels(split), np.int64), minlength=len(self.class_names))
        return dict(zip(self.class_names, counts.tolist()))

    def as_dict(self):
        """The `splits.json` form: `{"class_names": [...], "train": [[path, label], ...], "val": ..., "test": ...}`."""
        return {"class_names": list(self.class_names),
                **{split: [[path, int(label)] for path, label in self.parts[split]] for split in SPLITS}}


def _check_fraction(name, value):
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise KerasTransferError(f"{name} must be a fraction in [0, 1). Received: {name}={value!r}")


def _class_counts(n, validation_split, test_split):
    """`(n_val, n_test)` for a class of `n` images, rounded, leaving at least one training image when n >= 2."""
    n_val, n_test = int(n * validation_split + 0.5), int(n * test_split + 0.5)
    if n < 2:
        return 0, 0
    while n_val + n_test > n - 1:
        if n_test > n_val:
            n_test -= 1
        else:
            n_val -= 1
    return n_val, n_test


def split_images(images, *, validation_split=0.2, test_split=0.0, seed=1337, per_class=None):
    """Splits a `LabelledImages` per class into train/val/test; the same seed gives the same split.

    A `train/` `val/` `test/` layout (`images.splits` set) is kept as it is; a split it lacks (`val/`, `test/`)
    is carved out of `train/` by its fraction, like a plain class folder. Otherwise each class is
    shuffled by `numpy.random.default_rng(seed)` and `round(n * test_split)` images go to test,
    `round(n * validation_split)` to validation, the rest to training; a class of two or more images
    always keeps at least one training image. With `per_class=(train, val, test)` counts instead, each
    class gives exactly that many images to each split (a few-label experiment) and the rest is left out.

    Args:
        images: a `LabelledImages` from `data.find_images`.
        validation_split: share of each class for validation, in [0, 1).
        test_split: share of each class for testing, in [0, 1).
        seed: seed of the shuffle.
        per_class: `(train, val, test)` image counts per class, replacing the two fractions.

    Returns:
        A `Splits`.

    Example:
    >>> from keras_transfer.data.sources import LabelledImages
    >>> found = LabelledImages(paths=[f"/x/{i}.png" for i in range(10)], labels=[0] * 5 + [1] * 5,
    ...                        class_names=["a", "b"])
    >>> [len(part) for part in split_images(found, validation_split=0.2, seed=0).parts.values()]
    [8, 2, 0]
    """
    if per_class is not None:
        return _split_counts(images, per_class, seed)
    _check_fraction("validation_split", validation_split)
    _check_fraction("test_split", test_split)
    if validation_split + test_split >= 1:
        raise KerasTransferError(f"validation_split + test_split must be below 1, to leave training images. "
                                 f"Received: validation_split={validation_split!r}, test_split={test_split!r}")
    parts = {split: [] for split in SPLITS}
    pool = images
    if images.splits is not None:  # a layout: its splits as they are; one it lacks is carved out of train/
        for path, label, split in zip(images.paths, images.labels, images.splits):
            parts[split].append((path, label))
        validation_split = validation_split if not parts["val"] else None
        test_split = test_split if not parts["test"] else None
        train, parts["train"] = parts["train"], []
        pool = dataclasses.replace(images, paths=[p for p, _ in train], labels=[lab for _, lab in train], splits=None)
    rng = np.random.default_rng(seed)
    for label, members in enumerate(_shuffled_classes(pool, rng)):
        n_val, n_test = _class_counts(len(members), validation_split or 0.0, test_split or 0.0)
        parts["test"] += [(p, label) for p in members[:n_test]]
        parts["val"] += [(p, label) for p in members[n_test:n_test + n_val]]
        parts["train"] += [(p, label) for p in members[n_test + n_val:]]
    parts = {split: sorted(pairs, key=lambda pair: (pair[1], pair[0])) for split, pairs in parts.items()}
    # None: the layout gave that split, the fraction was not used (the summary says so)
    return Splits(class_names=list(images.class_names), parts=parts, images=images, seed=seed,
                  validation_split=validation_split, test_split=test_split)


def _shuffled_classes(images, rng):
    """Each class's paths, sorted then shuffled by `rng` (class by class, in label order): one pass over the
    labels, whatever the number of classes."""
    members = [[] for _ in images.class_names]
    for path, label in zip(images.paths, images.labels):
        members[label].append(path)
    return [[paths[i] for i in rng.permutation(len(paths))] for paths in map(sorted, members)]


def _split_counts(images, per_class, seed):
    """`split_images` with `(train, val, test)` image counts per class."""
    if not (isinstance(per_class, (tuple, list)) and len(per_class) == 3
            and all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in per_class) and per_class[0]):
        raise KerasTransferError("per_class must be (train, val, test) counts of images per class, train >= 1. "
                                 f"Received: per_class={per_class!r}")
    n_train, n_val, n_test = per_class
    need = n_train + n_val + n_test
    rng = np.random.default_rng(seed)
    shuffled = _shuffled_classes(images, rng)
    short = {name: len(members) for name, members in zip(images.class_names, shuffled) if len(members) < need}
    if short:
        raise KerasTransferError(f"Each class needs {need} images for per_class={tuple(per_class)}; too few in: "
                                 f"{short}. Received: per_class={per_class!r}")
    parts = {split: [] for split in SPLITS}
    for label, members in enumerate(shuffled):
        parts["train"] += [(p, label) for p in members[:n_train]]
        parts["val"] += [(p, label) for p in members[n_train:n_train + n_val]]
        parts["test"] += [(p, label) for p in members[n_train + n_val:need]]
    return Splits(class_names=list(images.class_names), parts=parts, images=images, seed=seed)


def class_weights(labels, num_classes):
    """Balanced class weights `{index: n / (num_classes * count_index)}` for `model.fit(class_weight=...)`.

    A class absent from `labels` gets 1.0 (it never weighs a sample).

    Example:
    >>> class_weights([0, 0, 0, 1], 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise KerasTransferError(f"num_classes must be a positive int. Received: num_classes={num_classes!r}")
    if labels.size == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise KerasTransferError(f"labels must be a non-empty list of ints in [0, {num_classes}). "
                                 f"Received: labels={labels.tolist()[:20]!r}")
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(labels.size / (num_classes * c)) if c else 1.0 for i, c in enumerate(counts.tolist())}


@dataclasses.dataclass
class DataSummary:
    """What the run trains on: images per class per split, image sizes, files left out, imbalance."""

    source: str
    kind: str
    class_names: list
    counts: dict
    image_size: dict
    skipped: list
    ignored: int
    dropped_classes: list
    imbalance_ratio: float
    seed: int = None
    validation_split: float = 0.0
    test_split: float = 0.0

    def as_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        width = max(len(name) for name in self.class_names + ["class"])
        lines = [f"Data: {self.source} ({self.kind}), {len(self.class_names)} classes",
                 f"  {'class'.ljust(width)}  " + "  ".join(f"{s:>6}" for s in SPLITS)]
        for name in self.class_names:
            lines.append(f"  {name.ljust(width)}  " + "  ".join(f"{self.counts[s][name]:>6}" for s in SPLITS))
        lines.append(f"  {'total'.ljust(width)}  " + "  ".join(f"{sum(self.counts[s].values()):>6}" for s in SPLITS))
        h, w = self.image_size["height"], self.image_size["width"]
        lines.append(f"Image sizes (min/median/max): height {h['min']}/{h['median']}/{h['max']}, "
                     f"width {w['min']}/{w['median']}/{w['max']}")
        lines.append(f"Imbalance (largest / smallest class in train): {self.imbalance_ratio:.2f}")
        lines.append(f"Ignored (hidden or not an image): {self.ignored} file(s)")
        for item in self.dropped_classes:
            lines.append(f"Class left out: {item['class']} ({item['reason']})")
        lines.append(f"Skipped (unreadable): {len(self.skipped)} file(s)")
        lines += [f"  {item['path']}: {item['reason']}" for item in self.skipped]
        return "\n".join(lines)


def _stats(values):
    return {"min": int(np.min(values)), "median": float(np.median(values)), "max": int(np.max(values))}


def summarize(splits):
    """The `DataSummary` of a `Splits` (from `split_images`)."""
    images = splits.images
    sizes = np.asarray(images.sizes, dtype=np.int64).reshape(-1, 2)
    train = [count for count in splits.counts("train").values() if count]
    return DataSummary(
        source=images.source, kind=images.kind, class_names=list(splits.class_names),
        counts={split: splits.counts(split) for split in SPLITS},
        image_size={"height": _stats(sizes[:, 0]), "width": _stats(sizes[:, 1])},
        skipped=[{"path": path, "reason": reason} for path, reason in images.skipped], ignored=images.ignored,
        dropped_classes=[{"class": name, "reason": reason} for name, reason in images.dropped],
        imbalance_ratio=float(max(train) / min(train)) if train else 0.0, seed=splits.seed,
        validation_split=splits.validation_split, test_split=splits.test_split)
