"""Which backbone? Ranks candidate backbones on the user's own data before any fine-tuning.

For each candidate the frozen features of the data (with the shifted views the default recipe's linear
probe uses) are computed once, then scored by LogME and a cross-validated linear probe
(`training.transferability`), and its serving cost is measured here: parameters, input size, milliseconds
per image (one image a call, the median of several calls after a warm-up) and the float32 weights' memory.
The result is a ranked table, `selection.json`, a plot of probe score against latency with the Pareto front
marked, and the `keras-transfer train` command that trains the winner.
"""

import dataclasses
import logging
import os
import shlex
import time

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.sources import find_images
from keras_transfer.data.task_sources import find_task_images, task_dataset
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import build_classifier, feature_extractor
from keras_transfer.models.registry import check_input_size, get_backbone_spec, list_backbones
from keras_transfer.runs.config import check_weights_source
from keras_transfer.serving.plots import matplotlib_available, pareto_front, plot_selection
from keras_transfer.training.budget import PROBE_VIEWS, PROBE_VIEWS_UP_TO
from keras_transfer.training.distribution import predict_batch
from keras_transfer.training.linear_probe import extract
from keras_transfer.training.transferability import PROBE_METRIC, check_task, effective_folds, logme, probe_score

SMALL_PARAMS = 8_000_000  # `--all-small`: the registry's backbones under this many parameters
RANK_BY = ("logme", "probe")
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

    @property
    def best(self):
        return self.candidates[0]

    def to_dict(self):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "candidates"}
        return dict(fields, probe_metric=PROBE_METRIC[self.task],
                    candidates=[dataclasses.asdict(c) for c in self.candidates])

    def table(self):
        """The ranking as a text table (`*`: on the Pareto front of probe score against latency)."""
        rows = [("rank", "backbone", "LogME", f"probe {PROBE_METRIC[self.task]}", "ms/image", "params", "size",
                 "weights MB", "seconds")]
        for rank, c in enumerate(self.candidates, 1):
            rows.append((f"{rank}{'*' if c.pareto else ''}", c.backbone, f"{c.logme:.4f}", f"{c.probe:.3f}",
                         f"{c.ms_per_image:.1f}", f"{c.params / 1e6:.2f}M", str(c.input_size), f"{c.weights_mb:.1f}",
                         f"{c.seconds:.1f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines + [
            f"Ranked by {self.rank_by} on {self.images} images ({self.task}; probe: {self.folds}-fold, "
            f"{self.views} shifted views of each training image); * = Pareto front of probe score against "
            f"latency; {self.seconds:.1f} s in all.",
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
    """`(paths, labels, readers)`: the images to score on, at most `max_images` per class (a seeded sample in
    file order; for a regression or multi-label manifest, at most `max_images` in all)."""
    check_task(task)
    check_max_images(max_images)
    rng = np.random.default_rng(seed)
    if task == "classification":
        found = find_images(data)
        labels = np.asarray(found.labels)
        keep = np.concatenate([_sample(np.flatnonzero(labels == c), max_images, rng)
                               for c in range(len(found.class_names))])
        return [found.paths[i] for i in keep], labels[keep], [found.readers[i] for i in keep]
    found = find_task_images(data, task)
    keep = _sample(np.arange(len(found.paths)), max_images, rng)
    return [found.paths[i] for i in keep], found.targets[keep], None


def _sample(rows, limit, rng):
    return rows if limit is None or len(rows) <= limit else np.sort(rng.choice(rows, limit, replace=False))


def serving_ms(extractor, size, repeats=5):
    """Median milliseconds of one image through `extractor` (a call per image, after one warm-up call)."""
    image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    predict_batch(extractor, image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(predict_batch(extractor, image))
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def select_backbones(data, out=None, *, backbones=None, all_small=False, weights=None, input_size=None,
                     task="classification", max_images=None, views="auto", folds=5, rank_by="logme",
                     batch_size=32, seed=1337, verbose=1):
    """Ranks candidate backbones on `data` by frozen-feature scores, with their serving cost.

    Args:
        data: what `train` reads: a folder of class subfolders, a layout or a manifest (a classification),
            or a regression / multi-label manifest (`task`).
        out: a folder for `selection.json` and `selection.png` (None: nothing written).
        backbones: registry names (a list or a comma-separated string); default: every backbone under
            8M parameters (`all_small`).
        weights: None (ImageNet for all), one value for all ('imagenet', 'none', a file), or `{name: value}`
            / `["NAME=VALUE", ...]` per candidate.
        input_size: one square side for all; default: each backbone's own default size.
        max_images: at most this many images per class (in all, for a regression or multi-label task).
        views: shifted views of each image for the probe; "auto": as the default recipe (8 up to 2,000 images).
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
    names = resolve_candidates(backbones, all_small)
    chosen = resolve_weights(weights, names)
    _check_options(rank_by, views, folds, input_size, names)
    check_task(task)
    check_max_images(max_images)
    if out is not None:
        io.check_writable(out, "the selection")
    paths, labels, readers = load_selection_data(data, task, max_images=max_images, seed=seed)
    views = (PROBE_VIEWS if len(paths) <= PROBE_VIEWS_UP_TO else 0) if views == "auto" else views
    candidates = []
    for name in names:
        size = input_size or get_backbone_spec(name).default_size
        if task == "classification":
            dataset = make_dataset(paths, list(labels), image_size=size, batch_size=batch_size, readers=readers)
        else:
            dataset = task_dataset(paths, labels, image_size=size, batch_size=batch_size)
        candidates.append(score_candidate(name, chosen[name], size, dataset, len(paths), task, views=views,
                                          folds=folds, seed=seed, batch_size=batch_size, verbose=verbose))
    for i in pareto_front([c.probe for c in candidates], [c.ms_per_image for c in candidates]):
        candidates[i].pareto = True
    other = RANK_BY[1 - RANK_BY.index(rank_by)]  # breaks ties (to 1e-9: two LogMEs at the no-information limit)
    candidates.sort(key=lambda c: (-round(getattr(c, rank_by), 9), -getattr(c, other)))
    selection = Selection(candidates=candidates, task=task, rank_by=rank_by, images=len(paths), views=views,
                          folds=effective_folds(labels, task, folds), source=os.path.abspath(os.fspath(data)),
                          seconds=time.perf_counter() - start,
                          command=train_command(data, candidates[0], task, input_size))
    if out is not None:
        write_selection(selection, out)
    return selection


def _check_options(rank_by, views, folds, input_size, names):
    if rank_by not in RANK_BY:
        raise KerasTransferError(f"rank_by must be one of {', '.join(RANK_BY)}. Received: rank_by={rank_by!r}")
    if views != "auto" and (isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 0):
        raise KerasTransferError(f"views must be 'auto' or an integer >= 0. Received: views={views!r}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise KerasTransferError(f"folds must be an integer >= 2. Received: folds={folds!r}")
    if input_size is not None:
        for name in names:
            check_input_size(get_backbone_spec(name), input_size)


def score_candidate(name, weights, size, dataset, images, task, *, views=0, folds=5, seed=1337, batch_size=32,
                    verbose=1):
    """One `Candidate`: its features computed once (the `images` of `dataset`, then `views` shifted copies),
    LogME on the images' features, the cross-validated probe on all, and the serving cost measured here
    (`seconds`: all of it, from building the model; `features_seconds`: the features alone)."""
    begin = time.perf_counter()
    model = build_classifier(name, 2, weights=weights, input_size=size, augmentation=None, dropout=0.0)
    extractor = feature_extractor(model)
    progress = keras.utils.Progbar(images * (views + 1), unit_name="image") if verbose else None
    if verbose:
        log.info("Features of %s (%s weights, %d px)%s ...", name, _shown(weights), size,
                 f" with {views} shifted views of each image" if views else "")
    start = time.perf_counter()
    features, labels = extract(extractor, dataset, batch_size, views=views, seed=seed, progress=progress)
    features_seconds = time.perf_counter() - start
    images = len(labels) // (views + 1)  # the same, less any file that failed to decode
    labels = labels[:images]
    params = int(extractor.count_params())
    scores = dict(logme=logme(features[:images], labels, task),
                  probe=probe_score(features, labels, task, folds=folds, views=views, seed=seed))
    return Candidate(backbone=name, weights=_shown(weights), input_size=size, **scores, params=params,
                     ms_per_image=serving_ms(extractor, size), weights_mb=params * 4 / 2 ** 20,
                     feature_dim=int(features.shape[1]), features_seconds=features_seconds,
                     seconds=time.perf_counter() - begin)


def _shown(weights):
    return "none" if weights is None else os.fspath(weights)


def train_command(data, best, task, input_size):
    """The `keras-transfer train` command line that trains `best` on `data` with the default recipe."""
    parts = ["keras-transfer", "train", shlex.quote(os.fspath(data)), "--backbone", best.backbone]
    if best.weights != "imagenet":
        parts += ["--weights", shlex.quote(best.weights)]
    if input_size is not None:
        parts += ["--input-size", str(input_size)]
    if task != "classification":
        parts += ["--task", task]
    return " ".join(parts + ["--out", shlex.quote(os.path.join("runs", best.backbone))])


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
