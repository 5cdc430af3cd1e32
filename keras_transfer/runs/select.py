"""Which backbone? Ranks candidate backbones on the user's own data before any fine-tuning.

For each candidate the frozen features of the data (with the shifted views the default recipe's linear
probe uses) are computed once, then scored by LogME and a cross-validated linear probe
(`training.transferability`), and its serving cost is measured here: parameters, input size, milliseconds
per image (one image a call, the median of several calls after a warm-up) and the float32 weights' memory.
The result is a ranked table, `selection.json`, a plot of probe score against latency with the Pareto front
marked, and the `keras-transfer train` command that trains the winner.

Text data (a text table or a folder of `.txt` class folders, found by `is_text_data` or named by
`modality="text"`) compares KerasHub text encoders the same way, on their pooled sentence features
(`runs.select_text`); a multi-label task also reports LogME per label.
"""

import csv
import dataclasses
import logging
import os
import shlex
import time

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.data.images import is_image_name
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.sources import find_images
from keras_transfer.data.task_sources import find_task_images, task_dataset
from keras_transfer.errors import KerasTransferError, text_extra_needed
from keras_transfer.models.classifier import build_classifier, feature_extractor
from keras_transfer.models.registry import check_input_size, get_backbone_spec, list_backbones
from keras_transfer.runs.config import check_weights_source
from keras_transfer.serving.plots import matplotlib_available, pareto_front, plot_selection
from keras_transfer.training.budget import PROBE_VIEWS, PROBE_VIEWS_UP_TO
from keras_transfer.training.distribution import predict_batch
from keras_transfer.training.linear_probe import extract
from keras_transfer.training.transferability import (PROBE_METRIC, check_task, effective_folds, logme_per_column,
                                                     probe_score)

SMALL_PARAMS = 8_000_000  # `--all-small`: the registry's backbones under this many parameters
RANK_BY = ("logme", "probe")
MODALITIES = ("auto", "image", "text")
SELECTION_JSON, SELECTION_PLOT = "selection.json", "selection.png"
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Candidate:
    """One backbone's scores and serving cost (`selection.json` holds one per candidate)."""

    backbone: str
    weights: str
    input_size: int
    logme: float
    probe: float
    params: int
    ms_per_image: float
    weights_mb: float
    feature_dim: int
    features_seconds: float
    seconds: float
    pareto: bool = False
    logme_per_label: list = None  # a multi-label task's LogME of each label, in `Selection.label_names` order


@dataclasses.dataclass
class Selection:
    """The candidates ranked best first by `rank_by`, and how they were scored."""

    candidates: list
    task: str
    rank_by: str
    images: int
    views: int
    folds: int
    source: str
    seconds: float
    command: str
    modality: str = "image"
    label_names: list = None  # a multi-label task's labels

    @property
    def best(self):
        return self.candidates[0]

    def to_dict(self):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "candidates"}
        return dict(fields, probe_metric=PROBE_METRIC[self.task],
                    candidates=[dataclasses.asdict(c) for c in self.candidates])

    def table(self):
        """The ranking as a text table (`*`: on the Pareto front of probe score against latency)."""
        unit, size = ("text", "tokens") if self.modality == "text" else ("image", "size")
        rows = [("rank", "backbone", "LogME", f"probe {PROBE_METRIC[self.task]}", f"ms/{unit}", "params", size,
                 "weights MB", "seconds")]
        for rank, c in enumerate(self.candidates, 1):
            rows.append((f"{rank}{'*' if c.pareto else ''}", c.backbone, f"{c.logme:.4f}", f"{c.probe:.3f}",
                         f"{c.ms_per_image:.1f}", f"{c.params / 1e6:.2f}M", str(c.input_size), f"{c.weights_mb:.1f}",
                         f"{c.seconds:.1f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        for c in self.candidates if self.task == "multilabel" else ():
            names = self.label_names or [f"label {i}" for i in range(len(c.logme_per_label))]
            lines.append(f"LogME per label, {c.backbone}: "
                         + ", ".join(f"{name} {value:.4f}" for name, value in zip(names, c.logme_per_label)))
        return "\n".join(lines + [
            f"Ranked by {self.rank_by} on {self.images} {unit}s ({self.task}; probe: {self.folds}-fold"
            + (f", {self.views} shifted views of each training image" if self.modality == "image" else "")
            + f"); * = Pareto front of probe score against latency; {self.seconds:.1f} s in all.",
            f"Train the winner: {self.command}"])


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


def serving_ms(extractor, example, repeats=5):
    """Median milliseconds of one input through `extractor` (a call per input, after one warm-up call):
    `example` is a batch of one (an image, or a tokenised text's dict)."""
    predict_batch(extractor, example)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.tree.map_structure(keras.ops.convert_to_numpy, predict_batch(extractor, example))
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def select_backbones(data, out=None, *, backbones=None, all_small=False, weights=None, input_size=None,
                     task="classification", modality="auto", sequence_length=None, max_images=None, views="auto",
                     folds=5, rank_by="logme", batch_size=32, seed=1337, verbose=1):
    """Ranks candidate backbones (or text encoders) on `data` by frozen-feature scores, with their serving cost.

    Args:
        data: what `train` reads: a folder of class subfolders, a layout or a manifest (a classification),
            a regression / multi-label manifest (`task`), or labelled texts (a `.csv` / `.tsv` / `.jsonl`
            table of text,label or class folders of `.txt` files).
        out: a folder for `selection.json` and `selection.png` (None: nothing written).
        backbones: registry names (a list or a comma-separated string); default: every image backbone under
            8M parameters (`all_small`), or for texts `select_text.SMALL_TEXT_BACKBONES`. Text encoders may
            also be folders (Hugging Face or KerasHub preset).
        weights: None (ImageNet, or a text encoder's own weights, for all), one value for all ('imagenet',
            'none', a file), or `{name: value}` / `["NAME=VALUE", ...]` per candidate.
        input_size: one square side for all images; default: each backbone's own default size.
        modality: "image", "text" or "auto" (text when `is_text_data(data)`).
        sequence_length: tokens per text (default: each encoder's own, 128).
        max_images: at most this many images (texts) per class (in all, for a regression or multi-label task).
        views: shifted views of each image for the probe; "auto": as the default recipe (8 up to 2,000 images;
            none for texts).
        folds: the probe's cross-validation folds.
        rank_by: "logme" or "probe" (the cross-validated probe score).
        verbose: 1 shows a progress bar while each candidate's features are computed.

    Returns:
        A `Selection`, best candidate first.

    Example:
    >>> selection = select_backbones("photos", "runs/select", backbones="mobilenetv3small,mobilenetv2",
    ...                              weights="none", input_size=32, views=0)  # doctest: +SKIP
    >>> print(selection.table())  # doctest: +SKIP
    """
    start = time.perf_counter()
    _check_options(rank_by, views, folds)
    check_task(task)
    check_max_images(max_images)
    modality = resolve_modality(data, modality, task=task, input_size=input_size, sequence_length=sequence_length,
                                views=views)
    score = _score_texts if modality == "text" else _score_images
    candidates, labels, views, label_names = score(
        data, out, backbones=backbones, all_small=all_small, weights=weights, size=input_size or sequence_length,
        task=task, max_images=max_images, views=views, folds=folds, batch_size=batch_size, seed=seed, verbose=verbose)
    for i in pareto_front([c.probe for c in candidates], [c.ms_per_image for c in candidates]):
        candidates[i].pareto = True
    other = RANK_BY[1 - RANK_BY.index(rank_by)]  # breaks ties (to 1e-9: two LogMEs at the no-information limit)
    candidates.sort(key=lambda c: (-round(getattr(c, rank_by), 9), -getattr(c, other)))
    selection = Selection(candidates=candidates, task=task, rank_by=rank_by, images=len(labels), views=views,
                          folds=effective_folds(labels, task, folds), source=os.path.abspath(os.fspath(data)),
                          seconds=time.perf_counter() - start, modality=modality,
                          label_names=label_names if task == "multilabel" else None,
                          command=train_command(data, candidates[0], task, input_size, modality=modality,
                                                sequence_length=sequence_length))
    if out is not None:
        write_selection(selection, out)
    return selection


def _score_images(data, out, *, backbones, all_small, weights, size, task, max_images, views, folds, batch_size,
                  seed, verbose):
    """`(candidates, labels, views, names)` for image backbones (`select_backbones`' arguments)."""
    names = resolve_candidates(backbones, all_small)
    chosen = resolve_weights(weights, names)
    for name in names if size is not None else ():
        check_input_size(get_backbone_spec(name), size)
    if out is not None:
        io.check_writable(out, "the selection")
    paths, labels, readers, label_names = load_selection_data(data, task, max_images=max_images, seed=seed)
    views = (PROBE_VIEWS if len(paths) <= PROBE_VIEWS_UP_TO else 0) if views == "auto" else views
    candidates = []
    for name in names:
        side = size or get_backbone_spec(name).default_size
        if task == "classification":
            dataset = make_dataset(paths, list(labels), image_size=side, batch_size=batch_size, readers=readers)
        else:
            dataset = task_dataset(paths, labels, image_size=side, batch_size=batch_size)
        candidates.append(score_candidate(name, chosen[name], side, dataset, len(paths), task, views=views,
                                          folds=folds, seed=seed, batch_size=batch_size, verbose=verbose))
    return candidates, labels, views, label_names


def _score_texts(data, out, *, backbones, all_small, weights, size, task, max_images, views, folds, batch_size,
                 seed, verbose):
    """`(candidates, labels, 0, class names)` for text encoders (`select_backbones`' arguments; `size` is the
    sequence length, `all_small` the default)."""
    if backbones is not None and all_small:
        raise KerasTransferError(f"Give either backbones or all_small, not both. Received: backbones={backbones!r}, "
                                 "all_small=True")
    text = _text_module()
    names = text.resolve_text_candidates(backbones)
    chosen = text.resolve_text_weights(weights, names)
    if out is not None:
        io.check_writable(out, "the selection")
    texts, labels, class_names = text.load_texts_for_selection(data)
    keep = per_class_sample(labels, max_images, seed)
    texts, labels = [texts[i] for i in keep], labels[keep]
    candidates = []
    for name in names:
        begin = time.perf_counter()
        extractor, dataset, example, length = text.text_features_setup(name, chosen[name], size, texts, labels,
                                                                       batch_size)
        candidates.append(score_features(name, "none" if chosen[name] is None else "pretrained", length, extractor,
                                         dataset, len(texts), task, example, folds=folds, seed=seed,
                                         batch_size=batch_size, verbose=verbose, begin=begin, text=True))
    return candidates, labels, 0, class_names


def _text_module():
    """`runs.select_text`, or a one-line error naming the install command."""
    with text_extra_needed():
        import keras_transfer.runs.select_text as select_text  # optional: KerasHub, the `text` extra
    return select_text


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


def _check_options(rank_by, views, folds):
    if rank_by not in RANK_BY:
        raise KerasTransferError(f"rank_by must be one of {', '.join(RANK_BY)}. Received: rank_by={rank_by!r}")
    if views != "auto" and (isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 0):
        raise KerasTransferError(f"views must be 'auto' or an integer >= 0. Received: views={views!r}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise KerasTransferError(f"folds must be an integer >= 2. Received: folds={folds!r}")


def score_candidate(name, weights, size, dataset, images, task, *, views=0, folds=5, seed=1337, batch_size=32,
                    verbose=1):
    """One image backbone's `Candidate` (`score_features` on its feature extractor at `size` px)."""
    begin = time.perf_counter()
    model = build_classifier(name, 2, weights=weights, input_size=size, augmentation=None, dropout=0.0)
    example = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    return score_features(name, _shown(weights), size, feature_extractor(model), dataset, images, task, example,
                          views=views, folds=folds, seed=seed, batch_size=batch_size, verbose=verbose, begin=begin)


def score_features(name, weights, size, extractor, dataset, images, task, example, *, views=0, folds=5, seed=1337,
                   batch_size=32, verbose=1, begin=None, text=False):
    """One `Candidate`: `extractor`'s features computed once (the `images` of `dataset`, then `views` shifted
    copies), LogME on the inputs' features, the cross-validated probe on all, and the serving cost measured
    here on `example` (`seconds`: all of it, from `begin`; `features_seconds`: the features alone). `text`:
    the inputs are texts and `size` their tokens."""
    begin = time.perf_counter() if begin is None else begin
    progress = keras.utils.Progbar(images * (views + 1), unit_name="text" if text else "image") if verbose else None
    if verbose:
        log.info("Features of %s (%s weights, %d %s)%s ...", name, weights, size, "tokens" if text else "px",
                 f" with {views} shifted views of each image" if views else "")
    start = time.perf_counter()
    features, labels = extract(extractor, dataset, batch_size, views=views, seed=seed, progress=progress)
    features_seconds = time.perf_counter() - start
    images = len(labels) // (views + 1)  # the same, less any file that failed to decode
    labels = labels[:images]
    params = int(extractor.count_params())
    per_column = logme_per_column(features[:images], labels, task)
    return Candidate(backbone=name, weights=weights, input_size=size, logme=float(np.mean(per_column)),
                     probe=probe_score(features, labels, task, folds=folds, views=views, seed=seed), params=params,
                     ms_per_image=serving_ms(extractor, example), weights_mb=params * 4 / 2 ** 20,
                     feature_dim=int(features.shape[1]), features_seconds=features_seconds,
                     seconds=time.perf_counter() - begin,
                     logme_per_label=per_column if task == "multilabel" else None)


def _shown(weights):
    return "none" if weights is None else os.fspath(weights)


def train_command(data, best, task, input_size, *, modality="image", sequence_length=None):
    """The `keras-transfer train` command line that trains `best` on `data` with the default recipe."""
    parts = ["keras-transfer", "train", shlex.quote(os.fspath(data))]
    if modality == "text":
        parts += ["--modality", "text"]
    parts += ["--backbone", shlex.quote(best.backbone)]
    if best.weights not in ("imagenet", "pretrained"):
        parts += ["--weights", shlex.quote(best.weights)]
    if input_size is not None:
        parts += ["--input-size", str(input_size)]
    if sequence_length is not None:
        parts += ["--sequence-length", str(sequence_length)]
    if task != "classification":
        parts += ["--task", task]
    run_name = os.path.basename(os.path.normpath(best.backbone))
    return " ".join(parts + ["--out", shlex.quote(os.path.join("runs", run_name))])


def write_selection(selection, out):
    """Writes `selection.json` and, with matplotlib, `selection.png` into `out`; returns the paths written."""
    os.makedirs(out, exist_ok=True)
    written = [os.path.join(out, SELECTION_JSON)]
    io.write_json(written[0], selection.to_dict())
    if matplotlib_available():
        c = selection.candidates
        written.append(plot_selection([x.backbone for x in c], [x.probe for x in c], [x.ms_per_image for x in c],
                                      os.path.join(out, SELECTION_PLOT),
                                      score_label=f"cross-validated probe {PROBE_METRIC[selection.task]}"))
    else:
        log.warning("No plot: matplotlib is not installed (pip install \"keras-transfer[plots]\").")
    return written
