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

import logging
import os
import time

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.task_sources import task_dataset
from keras_transfer.errors import KerasTransferError, text_extra_needed
from keras_transfer.models.classifier import build_classifier, feature_extractor
from keras_transfer.models.registry import check_input_size, get_backbone_spec
from keras_transfer.runs.select_inputs import (MODALITIES, RANK_BY, SMALL_PARAMS, check_max_images, check_options,
                                               is_text_data, load_selection_data, per_class_sample,
                                               resolve_candidates, resolve_modality, resolve_weights)
from keras_transfer.runs.select_report import (SELECTION_JSON, SELECTION_PLOT, Candidate, Selection, train_command,
                                               write_selection)
from keras_transfer.serving.plots import pareto_front
from keras_transfer.training.budget import PROBE_VIEWS, PROBE_VIEWS_UP_TO
from keras_transfer.training.distribution import predict_batch
from keras_transfer.training.linear_probe import extract
from keras_transfer.training.transferability import check_task, effective_folds, logme_per_column, probe_score

__all__ = ["MODALITIES", "RANK_BY", "SELECTION_JSON", "SELECTION_PLOT", "SMALL_PARAMS", "Candidate", "Selection",
           "is_text_data", "resolve_candidates", "resolve_weights", "score_candidate", "score_features",
           "select_backbones", "serving_ms", "write_selection"]
log = logging.getLogger(__name__)


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
                     folds=5, rank_by="probe", batch_size=32, seed=1337, verbose=1):
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
        rank_by: "probe" (the cross-validated probe score; it agreed with fine-tuning best, see
            docs/results.md) or "logme"; the other score breaks ties.
        verbose: 1 shows a progress bar while each candidate's features are computed.

    Returns:
        A `Selection`, best candidate first.

    Example:
    >>> selection = select_backbones("photos", "runs/select", backbones="mobilenetv3small,mobilenetv2",
    ...                              weights="none", input_size=32, views=0)  # doctest: +SKIP
    >>> print(selection.table())  # doctest: +SKIP
    """
    start = time.perf_counter()
    check_options(rank_by, views, folds)
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
    other = RANK_BY[1 - RANK_BY.index(rank_by)]  # breaks ties (to 1e-9: probe accuracies on a few held-out
    # images tie often; LogMEs tie at the no-information limit)
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

