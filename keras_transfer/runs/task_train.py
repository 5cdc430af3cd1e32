"""Drives a regression or multi-label training run from a manifest (what `train_from_folder` runs for
`task="regression"` or `"multilabel"`).

The steps are a classification run's (`runs.train`): check everything, split, build, write the run folder's
settings, run the recipe with its step budget and checkpoints, plot the history; then, for multi-label, each
label's threshold is chosen on the validation split (maximising its F1) and stored in `best.keras`; the best
model is evaluated on the test split (else the validation split) into `report.json` / `report.txt` (and, for
regression with matplotlib, `residuals.png` and `predicted_vs_true.png`).

Multi-label runs with `class_weight="balanced"` weigh each label's positives by the training split's
negatives / positives in [1, 10] (`models.label_weights`: stored in the head, listed in `config.json`);
`cache_features=True` trains the head-only phase on features computed once (`training.caching`), as for
classifiers.

`resume=True` continues an interrupted run as a classification run does (`training.state.TrainingState`: in
its phase, at its epoch, with its optimizer state; the settings and the data must be the run's); the
thresholds are chosen on validation once the resumed run has finished, as in an uninterrupted one.
"""

import logging
import os

import keras

from keras_transfer import io
from keras_transfer.data.fingerprint import fingerprint
from keras_transfer.data.splits import SPLITS
from keras_transfer.data.task_sources import load_task_data
from keras_transfer.errors import KerasTransferError
from keras_transfer.layout import (BEST_MODEL, CLASS_NAMES, CONFIG, DATA_FINGERPRINT, HISTORY_JSON,
                                   RECIPE, SPLITS_FILE)
from keras_transfer.history import history_columns
from keras_transfer.models.saving import load_keras_file
from keras_transfer.models.heads import build_model, set_thresholds, standardisation
from keras_transfer.models.label_weights import positive_weights
from keras_transfer.runs.folder import (check_resume, check_run_folder, check_same_data, prepare_run_folder,
                                        write_history_plot)
from keras_transfer.serving.task_metrics import choose_thresholds
from keras_transfer.serving.task_report import evaluate_task, task_outputs
from keras_transfer.training.budget import DEFAULT_BATCH, batch_for
from keras_transfer.runs.config import recipe_options
from keras_transfer.training.recipes import data_size, plan_recipe, run_recipe
from keras_transfer.training.state import TrainingState

log = logging.getLogger(__name__)


def run_task_training(config, out, *, overwrite=False, verbose="auto", resume=False):
    """Runs a validated regression or multi-label `RunConfig` into the run folder `out`.

    `resume=True` continues the interrupted run in `out` (its settings must equal `config`; its data must split
    as before, with the same targets or labels and file contents).

    Returns:
        `(model, FineTuneResult)`; the model holds the thresholds chosen on validation (multi-label).
    """
    config = config.validate(resume=resume)
    check_resume(out, config) if resume else check_run_folder(out, overwrite)
    data = _load(config)
    prints = fingerprint(p for s in SPLITS for p in data.paths(s))
    if resume:
        check_same_data(out, data.as_dict(), data.names, prints)
    keras.utils.set_random_seed(config.seed)
    mean, scale = standardisation(data.targets("train")) if config.task == "regression" else (None, None)
    label_weights = positive_weights(data.targets("train")) if config.class_weight else None  # multilabel only
    # Resumed, the weights come from last.keras (L2-SP needs the pretrained ones as its reference: loaded).
    model = build_model(config.backbone, config.task, class_names=data.names, loss=config.loss, target_mean=mean,
                        target_scale=scale, label_weights=label_weights,
                        weights=None if resume and not config.l2sp else config.weights,
                        input_size=config.input_size, augmentation=config.augmentation, dropout=config.dropout,
                        seed=config.seed, precision=config.precision)
    state = TrainingState(out, resume=resume)  # resumed: reads last.keras, the truth of where the run stopped
    if state.finished:
        raise KerasTransferError(f"The run in {out} already finished all its epochs; nothing to resume. "
                                 f"Received: resume=True")
    plan = _plan(config, model, data)
    if not resume:
        prepare_run_folder(out, overwrite)
        weights_json = label_weights and dict(zip(data.names, label_weights))
        io.write_json(os.path.join(out, CONFIG), config.to_json(label_weights=weights_json))
        io.write_json(os.path.join(out, CLASS_NAMES), data.names)
        io.write_json(os.path.join(out, SPLITS_FILE), data.as_dict())
        io.write_json(os.path.join(out, DATA_FINGERPRINT), prints)
    result = _run_recipe(config, model, data, out, state, verbose, plan)
    io.write_json(os.path.join(out, HISTORY_JSON), history_columns(state.rows))
    write_history_plot(out)
    best_path = os.path.join(out, BEST_MODEL)
    best = load_keras_file(best_path) if os.path.isfile(best_path) else model
    if config.task == "multilabel" and data.val is not None:
        thresholds = choose_thresholds(*task_outputs(best, data.val))
        set_thresholds(best, thresholds)
        set_thresholds(model, thresholds)
        with io.atomic_path(best_path, ".keras") as tmp:
            best.save(tmp)
        log.info("Per-label thresholds chosen on the validation split (best F1): %s",
                 dict(zip(data.names, thresholds)))
    split = "test" if data.test is not None else "val"
    if getattr(data, split) is not None:
        report = evaluate_task(best, getattr(data, split), out=out)
        log.info("%s split:\n%s", split, report.summary())
    return model, result


def _load(config):
    """The manifest's data; an unset batch size is 32, at most a quarter of the training images."""
    def load(batch_size):
        keras.utils.set_random_seed(config.seed)
        return load_task_data(config.data_dir, config.task, image_size=config.input_size, batch_size=batch_size,
                              validation_split=config.validation_split, test_split=config.test_split,
                              seed=config.seed, separator=config.label_separator, antialias=config.antialias)

    data = load(config.batch_size or DEFAULT_BATCH)
    batch = batch_for(len(data.parts["train"]), config.batch_size)
    return data if batch == (config.batch_size or DEFAULT_BATCH) else load(batch)


def _plan(config, model, data):
    """`(options, recipe name, why)` of the run's recipe."""
    options = recipe_options(config, layer_decay=config.layer_decay, l2sp=config.l2sp)
    name, _, why = plan_recipe(config.recipe, data_size(model, data.train, len(data.parts["train"])), options,
                               pretrained=config.weights is not None)
    return options, name, why


def _run_recipe(config, model, data, out, state, verbose, plan):
    options, name, why = plan
    io.write_json(os.path.join(out, RECIPE), dict(recipe=name, requested=config.recipe, plan=why))
    return run_recipe(model, data.train, data.val, recipe=config.recipe, pretrained=config.weights is not None,
                      options=options, num_images=len(data.parts["train"]),
                      checkpoint_path=os.path.join(out, BEST_MODEL),
                      cache_features=config.cache_features, cache_dir=config.cache_dir, jit_compile=config.jit_compile,
                      state=state, verbose=verbose)
