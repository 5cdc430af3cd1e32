"""Drives a regression or multi-label training run from a manifest (what `train_from_folder` runs for
`task="regression"` or `"multilabel"`).

The steps are a classification run's (`runs.train`): check everything, split, build, write the run folder's
settings, run the recipe with its step budget and checkpoints, plot the history; then, for multi-label, each
label's threshold is chosen on the validation split (maximising its F1) and stored in `best.keras`; the best
model is evaluated on the test split (else the validation split) into `report.json` / `report.txt` (and, for
regression with matplotlib, `residuals.png` and `predicted_vs_true.png`).
"""

import logging
import os

import keras

from keras_transfer import io
from keras_transfer.data.fingerprint import fingerprint
from keras_transfer.data.splits import SPLITS
from keras_transfer.data.task_sources import load_task_data
from keras_transfer.errors import KerasTransferError
from keras_transfer.layout import (BEST_MODEL, CLASS_NAMES, CONFIG, DATA_FINGERPRINT, HISTORY_JSON, HISTORY_PLOT,
                                   RECIPE, SPLITS_FILE)
from keras_transfer.history import history_columns
from keras_transfer.models.classifier import load_keras_file
from keras_transfer.models.heads import build_model, set_thresholds, standardisation
from keras_transfer.runs.folder import check_run_folder, prepare_run_folder
from keras_transfer.serving import plots
from keras_transfer.serving.task_metrics import choose_thresholds
from keras_transfer.serving.task_report import evaluate_task, task_outputs
from keras_transfer.training.budget import DEFAULT_BATCH, batch_for
from keras_transfer.runs.config import recipe_options
from keras_transfer.training.recipes import data_size, plan_recipe, run_recipe
from keras_transfer.training.state import TrainingState

log = logging.getLogger(__name__)


def run_task_training(config, out, *, overwrite=False, verbose="auto", resume=False):
    """Runs a validated regression or multi-label `RunConfig` into the run folder `out`.

    Returns:
        `(model, FineTuneResult)`; the model holds the thresholds chosen on validation (multi-label).
    """
    config = config.validate(resume=resume)
    if resume:
        raise KerasTransferError(f"resume is not supported for task {config.task!r} runs yet; start the run again "
                                 f"(--overwrite). Received: resume=True")
    check_run_folder(out, overwrite)
    data = _load(config)
    keras.utils.set_random_seed(config.seed)
    mean, scale = standardisation(data.targets("train")) if config.task == "regression" else (None, None)
    model = build_model(config.backbone, config.task, class_names=data.names, loss=config.loss, target_mean=mean,
                        target_scale=scale, weights=config.weights, input_size=config.input_size,
                        augmentation=config.augmentation, dropout=config.dropout, seed=config.seed,
                        precision=config.precision)
    state = TrainingState(out)
    prepare_run_folder(out, overwrite)
    io.write_json(os.path.join(out, CONFIG), config.to_json())
    io.write_json(os.path.join(out, CLASS_NAMES), data.names)
    io.write_json(os.path.join(out, SPLITS_FILE), data.as_dict())
    io.write_json(os.path.join(out, DATA_FINGERPRINT), fingerprint(p for s in SPLITS for p in data.paths(s)))
    result = _run_recipe(config, model, data, out, state, verbose)
    io.write_json(os.path.join(out, HISTORY_JSON), history_columns(state.rows))
    if plots.matplotlib_available():
        plots.plot_history(os.path.join(out, HISTORY_JSON), os.path.join(out, HISTORY_PLOT))
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


def _run_recipe(config, model, data, out, state, verbose):
    options = recipe_options(config, layer_decay=config.layer_decay, l2sp=config.l2sp)
    num_images = len(data.parts["train"])
    pretrained = config.weights is not None
    name, _, why = plan_recipe(config.recipe, data_size(model, data.train, num_images), options, pretrained=pretrained)
    io.write_json(os.path.join(out, RECIPE), dict(recipe=name, requested=config.recipe, plan=why))
    return run_recipe(model, data.train, data.val, recipe=config.recipe, pretrained=pretrained, options=options,
                      num_images=num_images, checkpoint_path=os.path.join(out, BEST_MODEL),
                      jit_compile=config.jit_compile, state=state, verbose=verbose)
