"""Manifests for regression (numeric targets) and multi-label (a list of labels per image) data, their split
and their `tf.data` pipelines.

Regression:
- CSV: `path,target` rows, or `path,<name>,<name>...` with a header naming the targets (several outputs);
  without a header the targets are `target` (one column) or `target_1`, `target_2`, ...
- JSON: a list of `{"path": ..., "target": 3.5}` or `{"path": ..., "targets": [3.5, 1.0]}` or `[path, value(s)]`.

Multi-label:
- CSV: `path,labels` rows, the labels joined by `separator` (default `|`): `img.png,cat|dog`; optional header.
- JSON: a list of `{"path": ..., "labels": ["cat", "dog"]}` or `[path, [labels]]`.

A bad row is one line naming it: a non-numeric or NaN target, an empty label list, a missing file, a path listed
twice; after the split, a label that no training image has (seen only in validation or test).
"""

import dataclasses
import functools
import math
import os
import warnings

import numpy as np

from keras_transfer.data.images import ImageDecodeError, read_header
from keras_transfer.data.manifests import PathResolver, csv_rows, is_header, json_rows
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.splits import SPLITS
from keras_transfer.errors import KerasTransferError, unknown_name

TASK_KINDS = ("regression", "multilabel")
_LABELS_NAMES = ("labels", "label", "tags", "classes")


@dataclasses.dataclass
class TaskImages:
    """Readable images with their float targets `(n, outputs)`: values, or 0/1 per label.

    Attributes:
        paths: absolute paths; targets: `(n, outputs)` float32; names: the target or label names;
        rows: where each path was listed (`"line 3"`, `"entry 2"`); skipped: `(path, reason)` of unreadable files.
    """

    task: str
    paths: list
    targets: np.ndarray
    names: list
    rows: list
    skipped: list
    source: str


def _error(manifest, where, what, task):
    form = "path,target(s)" if task == "regression" else "path,labels"
    return KerasTransferError(f"Manifest {manifest}, {where}: {what}. Each row needs `{form}`. "
                              f"Received: source={manifest!r}")


def _read_json(manifest, task):
    keys = ("target", "targets", "value") if task == "regression" else ("labels", "tags")
    return json_rows(manifest, keys, functools.partial(_error, manifest, task=task)), None


def _names_values(task):
    """Whether a header row's cells after the path column name the values (and are not themselves values)."""
    if task == "regression":
        return lambda rest: not _is_number(rest)
    return lambda rest: rest[0].strip().lower() in _LABELS_NAMES


def _read_csv(manifest, task):
    rows = csv_rows(manifest, functools.partial(_error, manifest, task=task))
    names = None
    if rows and is_header(rows[0][1], _names_values(task)):
        names, rows = [cell.strip() for cell in rows[0][1][1:]], rows[1:]
    out = []
    for where, row in rows:
        if len(row) < 2 or (task == "multilabel" and len(row) != 2) or (names and len(row) != len(names) + 1):
            expected = len(names) + 1 if names else (2 if task == "multilabel" else "2 or more")
            raise _error(manifest, where, f"expected {expected} columns, got {len(row)}: {row!r}", task)
        out.append((where, row[0].strip(), [c.strip() for c in row[1:]] if task == "regression" else row[1]))
    return out, names if task == "regression" else None


def _is_number(cells):
    try:
        [float(c) for c in cells]
        return True
    except ValueError:
        return False


def parse_targets(manifest, where, value, task, separator):
    """One row's targets (a list of floats) or labels (a list of names); a bad one is an error naming the row."""
    if task == "regression":
        values = value if isinstance(value, (list, tuple)) else [value]
        out = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise _error(manifest, where, f"target {v!r} is not a number", task)
            try:
                number = float(v)
            except ValueError:
                raise _error(manifest, where, f"target {v!r} is not a number", task) from None
            if not math.isfinite(number):
                raise _error(manifest, where, f"target {v!r} is NaN or infinite; every target must be a finite "
                             "number", task)
            out.append(number)
        return out
    labels = value.split(separator) if isinstance(value, str) else value
    if not isinstance(labels, (list, tuple)):
        raise _error(manifest, where, f"labels must be a list (or text joined by {separator!r}), got {value!r}", task)
    labels = sorted({str(label).strip() for label in labels if str(label).strip()})
    if not labels:
        raise _error(manifest, where, f"empty label list {value!r}; every image needs at least one label", task)
    return labels


def find_task_images(manifest, task, *, separator="|"):
    """Reads a regression or multi-label manifest (see the module docstring); returns a `TaskImages`.

    Example:
    >>> found = find_task_images("ages.csv", "regression")  # doctest: +SKIP
    >>> found.targets.shape
    (120, 1)
    """
    if task not in TASK_KINDS:
        raise unknown_name("task", task, TASK_KINDS)
    manifest = os.fspath(manifest)
    if not (os.path.isfile(manifest) and manifest.lower().endswith((".csv", ".json"))):
        raise KerasTransferError(f"A {task} run reads a .csv or .json manifest; {manifest} is not one. "
                                 f"Received: data_dir={manifest!r}")
    rows, names = (_read_json if manifest.lower().endswith(".json") else _read_csv)(manifest, task)
    resolve = PathResolver(manifest, functools.partial(_error, manifest, task=task))
    entries = [(where, resolve(where, path), parse_targets(manifest, where, value, task, separator))
               for where, path, value in rows]
    if not entries:
        raise _error(manifest, "whole file", "no rows", task)
    return _task_images(manifest, task, entries, names)


def _task_images(manifest, task, entries, names):
    skipped, kept = [], []
    for entry in entries:
        try:
            read_header(entry[1])
            kept.append(entry)
        except ImageDecodeError as error:
            skipped.append((entry[1], error.reason))
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} unreadable file(s) in {manifest}: "
                      + "; ".join(f"{p} ({r})" for p, r in skipped), stacklevel=3)
    return task_rows(manifest, task, kept, names, skipped)


def task_rows(manifest, task, kept, names, skipped=()):
    """A `TaskImages` of `kept` `(where, id, targets or labels)` rows (`parse_targets`): regression's target
    names (`names`, else `target` / `target_1`...), or multi-label's sorted label names and 0/1 columns."""
    if task == "regression":
        widths = {len(t) for _, _, t in kept}
        if len(widths) > 1:
            where = next(w for w, _, t in kept if len(t) != len(kept[0][2]))
            raise _error(manifest, where, f"rows have different numbers of targets ({sorted(widths)})", task)
        width = widths.pop() if widths else 1
        names = names or (["target"] if width == 1 else [f"target_{i}" for i in range(1, width + 1)])
        targets = np.asarray([t for _, _, t in kept], "float32").reshape(len(kept), width)
    else:
        names = sorted({label for _, _, labels in kept for label in labels})
        index = {name: i for i, name in enumerate(names)}
        targets = np.zeros((len(kept), len(names)), "float32")
        for row, (_, _, labels) in enumerate(kept):
            targets[row, [index[label] for label in labels]] = 1.0
    return TaskImages(task=task, paths=[p for _, p, _ in kept], targets=targets, names=list(names),
                      rows=[w for w, _, _ in kept], skipped=list(skipped), source=os.path.abspath(manifest))


def split_task_images(found, *, validation_split=0.2, test_split=0.0, seed=1337):
    """`{split: row indices}`: a seeded random split; a label no training image has is an error naming its row."""
    n = len(found.paths)
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(n * validation_split + 0.5), int(n * test_split + 0.5)
    if n - n_val - n_test < 1:
        raise KerasTransferError(f"{found.source} has {n} readable images: too few to split. Received: "
                                 f"validation_split={validation_split!r}, test_split={test_split!r}")
    parts = dict(train=np.sort(order[n_val + n_test:]), val=np.sort(order[:n_val]),
                 test=np.sort(order[n_val:n_val + n_test]))
    if found.task == "multilabel":
        in_train = found.targets[parts["train"]].max(0) > 0
        for split in ("val", "test"):
            for row in parts[split]:
                missing = [found.names[j] for j in np.flatnonzero((found.targets[row] > 0) & ~in_train)]
                if missing:
                    raise KerasTransferError(
                        f"Manifest {found.source}, {found.rows[row]}: label {missing[0]!r} appears only in the "
                        f"{'validation' if split == 'val' else 'test'} split; no training image has it, so the model "
                        f"cannot learn it. Add training images with it, or drop it. Received: label={missing[0]!r}")
    return parts


@dataclasses.dataclass
class TaskData:
    """Training, validation and test datasets of `(images, targets)` batches (val/test `None` when empty)."""

    task: str
    train: object
    val: object
    test: object
    names: list
    found: TaskImages
    parts: dict

    def targets(self, split):
        return self.found.targets[self.parts[split]]

    def paths(self, split):
        return [self.found.paths[i] for i in self.parts[split]]

    def as_dict(self):
        """The `splits.json` form: names, and `[path, targets]` per split."""
        return {"task": self.task, "names": list(self.names),
                **{s: [[p, t.tolist()] for p, t in zip(self.paths(s), self.targets(s))] for s in SPLITS}}


def task_dataset(paths, targets, *, image_size, batch_size, shuffle=False, seed=1337, antialias=False):
    """`make_dataset`'s pipeline, each image with its float target row instead of an int label."""
    import tensorflow as tf  # lazy: tf.data carries the images under every backend

    table = tf.constant(np.asarray(targets, "float32"))
    dataset = make_dataset(paths, list(range(len(paths))), image_size=image_size, batch_size=batch_size,
                           shuffle=shuffle, seed=seed, antialias=antialias)
    return dataset.map(tf.autograph.experimental.do_not_convert(lambda x, i: (x, tf.gather(table, i))))


def load_task_data(manifest, task, *, image_size, batch_size=32, validation_split=0.2, test_split=0.0, seed=1337,
                   separator="|", antialias=False):
    """Reads, checks and splits a task manifest into `tf.data` sets; returns a `TaskData`."""
    found = find_task_images(manifest, task, separator=separator)
    parts = split_task_images(found, validation_split=validation_split, test_split=test_split, seed=seed)
    sets = {split: task_dataset([found.paths[i] for i in rows], found.targets[rows], image_size=image_size,
                                batch_size=batch_size, shuffle=split == "train", seed=seed, antialias=antialias)
            if len(rows) else None for split, rows in parts.items()}
    return TaskData(task=task, train=sets["train"], val=sets["val"], test=sets["test"], names=found.names,
                    found=found, parts=parts)
