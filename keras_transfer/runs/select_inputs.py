"""What `select` compares and on which examples: the candidate backbones, their weights, the data's modality
and a per-class sample of it; each option checked before any feature is computed."""

import csv
import os

import numpy as np

from keras_transfer.data.images import is_image_name
from keras_transfer.data.sources import find_images
from keras_transfer.data.task_sources import find_task_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.registry import get_backbone_spec, list_backbones
from keras_transfer.runs.config import check_weights_source
from keras_transfer.training.transferability import check_task

SMALL_PARAMS = 8_000_000  # `--all-small`: the registry's backbones under this many parameters
RANK_BY = ("probe", "logme")
MODALITIES = ("auto", "image", "text")


def resolve_candidates(backbones=None, all_small=False):
    """The registry names to compare: `backbones` (names, or a comma-separated string), or every registry
    backbone under `SMALL_PARAMS` parameters (`all_small`, and the default)."""
    if backbones is not None and all_small:
        raise KerasTransferError("Give either backbones or all_small, not both. "
                                 f"Received: backbones={backbones!r}, all_small=True")
    if backbones is None:
        return [spec.name for spec in list_backbones() if spec.params < SMALL_PARAMS]
    names = [b.strip() for b in backbones.split(",")] if isinstance(backbones, str) else list(backbones)
    if not names or any(not name for name in names):
        raise KerasTransferError(f"backbones must name at least one registry backbone, comma-separated. "
                                 f"Received: backbones={backbones!r}")
    resolved = [get_backbone_spec(name).name for name in names]
    if len(set(resolved)) != len(resolved):
        raise KerasTransferError(f"A backbone is named twice. Received: backbones={backbones!r}")
    return resolved


def resolve_weights(weights, names):
    """`{name: weights}` for every candidate: `weights` is None (ImageNet for all), one value for all
    ('imagenet', None / 'none', a file), a `{name: value}` dict, or `NAME=VALUE` strings (the CLI's)."""
    chosen = {name: "imagenet" for name in names}
    if weights is None or isinstance(weights, (str, os.PathLike)) and "=" not in os.fspath(weights):
        weights = {name: weights or "imagenet" for name in names}
    elif not isinstance(weights, dict):
        weights = dict(_name_value(item) for item in ([weights] if isinstance(weights, str) else weights))
    for name, value in weights.items():
        canonical = get_backbone_spec(name).name
        if canonical not in chosen:
            raise KerasTransferError(f"Weights are given for {name}, which is not a candidate. Candidates: "
                                     f"{', '.join(names)}. Received: weights {name}={value}")
        value = None if value is None or str(value).lower() == "none" else os.fspath(value)
        value = "imagenet" if value is not None and value.lower() == "imagenet" else value
        check_weights_source("weights", value)
        chosen[canonical] = value
    return chosen


def _name_value(item):
    name, sep, value = str(item).partition("=")
    if not sep or not name.strip() or not value.strip():
        raise KerasTransferError(f"--weights takes NAME=PATH (or NAME=imagenet, NAME=none), one per candidate. "
                                 f"Received: {item!r}")
    return name.strip(), value.strip()


def check_max_images(max_images):
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer))
                                   or max_images < 1):
        raise KerasTransferError(f"max_images must be a positive integer (images per class; for a regression or "
                                 f"multi-label manifest, images in all) or None. Received: max_images={max_images!r}")


def load_selection_data(data, task="classification", *, max_images=None, seed=1337):
    """`(paths, labels, readers, names)`: the images to score on, at most `max_images` per class (a seeded
    sample in file order; for a regression or multi-label manifest, at most `max_images` in all), and the class,
    target or label names."""
    check_task(task)
    check_max_images(max_images)
    if task == "classification":
        found = find_images(data)
        keep = per_class_sample(found.labels, max_images, seed)
        return ([found.paths[i] for i in keep], np.asarray(found.labels)[keep], [found.readers[i] for i in keep],
                found.class_names)
    found = find_task_images(data, task)
    keep = _sample(np.arange(len(found.paths)), max_images, np.random.default_rng(seed))
    return [found.paths[i] for i in keep], found.targets[keep], None, list(found.names)


def per_class_sample(labels, max_images, seed):
    """The rows to keep: at most `max_images` of each class (a seeded sample), in file order within a class."""
    labels, rng = np.asarray(labels), np.random.default_rng(seed)
    return np.concatenate([_sample(np.flatnonzero(labels == c), max_images, rng) for c in np.unique(labels)])


def _sample(rows, limit, rng):
    return rows if limit is None or len(rows) <= limit else np.sort(rng.choice(rows, limit, replace=False))


def is_text_data(data):
    """Whether `data` holds labelled texts: a `.tsv` / `.jsonl` table, a `.csv` with a `text` column, or a folder
    whose files include `.txt` files and no image."""
    data = os.fspath(data)
    if os.path.isfile(data):
        lower = data.lower()
        if lower.endswith(".csv"):
            with open(data, encoding="utf-8-sig", errors="replace", newline="") as f:
                return "text" in [column.strip() for column in next(csv.reader(f), [])]
        return lower.endswith((".tsv", ".jsonl"))
    texts = False
    for _, _, files in os.walk(data):
        for name in files:
            if is_image_name(name):
                return False
            texts = texts or name.lower().endswith(".txt")
    return texts


def resolve_modality(data, modality, *, task, input_size=None, sequence_length=None, views="auto"):
    """"image" or "text" (`modality`, or for "auto" what `is_text_data` finds), with the options that modality
    allows checked."""
    if modality not in MODALITIES:
        raise KerasTransferError(f"modality must be one of {', '.join(MODALITIES)}. Received: modality={modality!r}")
    if modality == "auto":
        modality = "text" if os.path.exists(data) and is_text_data(data) else "image"
    if modality == "image":
        if sequence_length is not None:
            raise KerasTransferError(f"sequence_length is for text encoders; images take input_size. Received: "
                                     f"sequence_length={sequence_length!r} with image data {os.fspath(data)!r}")
        return modality
    if task != "classification":
        raise KerasTransferError(f"Text selection scores a classification (text,label rows or .txt class folders). "
                                 f"Received: task={task!r}")
    if input_size is not None:
        raise KerasTransferError(f"input_size is for images; a text encoder takes sequence_length. Received: "
                                 f"input_size={input_size!r} with text data {os.fspath(data)!r}")
    if views not in ("auto", 0):
        raise KerasTransferError(f"Shifted views are for images; text selection takes views='auto' or 0. "
                                 f"Received: views={views!r}")
    if sequence_length is not None and (isinstance(sequence_length, bool) or not isinstance(sequence_length, int)
                                        or sequence_length < 2):
        raise KerasTransferError(f"sequence_length must be an integer >= 2 or None. "
                                 f"Received: sequence_length={sequence_length!r}")
    return modality


def check_options(rank_by, views, folds):
    if rank_by not in RANK_BY:
        raise KerasTransferError(f"rank_by must be one of {', '.join(RANK_BY)}. Received: rank_by={rank_by!r}")
    if views != "auto" and (isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 0):
        raise KerasTransferError(f"views must be 'auto' or an integer >= 0. Received: views={views!r}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise KerasTransferError(f"folds must be an integer >= 2. Received: folds={folds!r}")

