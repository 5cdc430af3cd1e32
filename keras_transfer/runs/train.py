"""The one run driver: a modality part (`runs.modalities`: image, text) composed with a task part (`runs.tasks`:
classification, regression, multi-label) trains from a data folder or table and writes the run folder (its
files: `keras_transfer.layout`). Checking the folder or the resume, the seed, the devices' scope, the training
state, the run folder's files, the history, its plot and the report's place are written here once."""

import inspect
import logging
import os

import keras

from keras_transfer import io
from keras_transfer.errors import KerasTransferError, text_extra_needed
from keras_transfer.history import history_columns
from keras_transfer.layout import (BEST_MODEL, CLASS_NAMES, CONFIG, DATA_FINGERPRINT, DATA_SUMMARY, HISTORY_JSON,
                                   RECIPE, SPLITS_FILE)
from keras_transfer.runs.config import RunConfig, recipe_options
from keras_transfer.runs.folder import (check_resume, check_run_folder, check_same_data, prepare_run_folder,
                                        write_history_plot)
from keras_transfer.runs.modalities import ImageModality
from keras_transfer.runs.tasks import TASK_PARTS
from keras_transfer.training.distribution import setup_devices
from keras_transfer.training.phases import batch_of
from keras_transfer.training.recipes import data_size, planner, run_recipe
from keras_transfer.training.state import TrainingState

log = logging.getLogger(__name__)


def train_from_folder(data_dir, out, *, overwrite=False, verbose="auto", resume=False, **settings):
    """Trains a classifier on an image folder and writes the run folder `out`.

    The keyword settings are `RunConfig`'s fields (`inspect.signature(train_from_folder)` lists them with
    their defaults): `backbone`, `weights`, `input_size`, `recipe`, `strategy`, `n`, `layer`, `epochs`,
    `fine_tune_epochs`, `batch_size`, `validation_split`, `test_split`, `strict`, `antialias`, `class_weight`,
    `augmentation`, `dropout`, `label_smoothing`, `learning_rate`, `fine_tune_learning_rate`, `l2sp`, `head_l2`,
    `layer_decay`, `seed`, `cache_features`, `cache_dir`, `precision`, `jit_compile`, `devices`, `distribution`, `task`,
    `modality`. Every one is checked before any work starts
    (`RunConfig.validate`).

    After every epoch `last.keras` (with the optimizer and training state) and `state.json` are written
    atomically; `resume=True` continues an interrupted run in `out` in its phase, at its epoch, with its
    optimizer state (the settings must equal the run's; `resume_run(out)` takes them from `config.json`).
    A NaN or infinite loss stops the run with a `NonFiniteLossError`; no NaN weights are saved.

    `recipe` names the recipe (`training.recipes`; `"auto"` picks `lp_ft` with pretrained weights, `scratch`
    with `weights=None`); `strategy="head_only"` trains only the head, the others say how the backbone is
    unfrozen after it (`"top_blocks"`, `"from_layer"`, `"full"`, `"gradual"`). Unset epochs and batch size
    come from the recipe's step budget; `recipe.json` says what was chosen and why.

    `data_dir` is a folder of class subfolders, a folder with `train/` `val/` `test/` subfolders (used as
    it is) or a CSV/JSON manifest of `path,label` rows (see `data.sources.find_images`). Unreadable files are
    skipped and listed in the logged data summary and `data_summary.json` (`strict=True`: the run stops
    before writing anything); `splits.json` records which file went to which split. `test_split` holds
    out a share of each class for testing; `class_weight="balanced"` weighs classes by n / (k * count).

    Speed: `cache_features=True` trains the head phase on backbone features computed once (needs
    `augmentation="none"`; in memory, or streamed to `cache_dir`); `precision` is `"float32"`,
    `"mixed_bfloat16"` or `"mixed_float16"`; `jit_compile` is `"auto"`, `True` or `False`. `devices="all"` or
    N trains data-parallel (`training.distribution`: a given batch is global, an unset one N x the single-device
    one with the learning rates x N).

    Returns:
        `(model, FineTuneResult)`: the trained model (best weights of its last phase restored;
        `out/best.keras` holds the best over all phases) and the phases' histories.

    Example:
    >>> model, result = train_from_folder("photos", "runs/a", backbone="vgg16", weights=None, input_size=32)
    """
    config = RunConfig.create(data_dir=data_dir, **settings)
    return run_training(config, out, overwrite=overwrite, verbose=verbose, resume=resume)


def _signature():
    fixed = [inspect.Parameter("data_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD),
             inspect.Parameter("out", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    flags = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
             for name, default in (("overwrite", False), ("verbose", "auto"), ("resume", False))]
    settings = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
                for f in RunConfig.fields() if f.name != "data_dir"]
    return inspect.Signature(fixed + flags + settings)


train_from_folder.__signature__ = _signature()  # the settings are RunConfig's fields, declared once


def run_training(config, out, *, overwrite=False, verbose="auto", resume=False):
    """Runs a `RunConfig` (validated here) into the run folder `out`: what `train_from_folder` and resume call.

    Returns:
        `(model, FineTuneResult)`.
    """
    config = config.validate(resume=resume)
    modality, task = modality_part(config.modality), TASK_PARTS[config.task]
    devices = setup_devices(config.devices, config.distribution)  # before any op: TensorFlow splits its CPU here
    check_resume(out, config) if resume else check_run_folder(out, overwrite)
    data, lr_scale = modality.load(config, devices)
    if data.summary is not None:
        log.info("%s", data.summary)
    if resume:
        check_same_data(out, data.splits, data.names, data.prints)
    head = task.head(config, data)
    with devices.scope():  # one device: no scope; N: building, compiling and fitting on all of them
        keras.utils.set_random_seed(config.seed)
        model = modality.build(config, data, head.build, resume)
        state = TrainingState(out, resume=resume)  # resumed: reads last.keras, the truth of where the run stopped
        if state.finished:
            raise KerasTransferError(f"The run in {out} already finished all its epochs; nothing to resume. "
                                     f"Received: resume=True")
        options = recipe_options(config, lr_scale=lr_scale, **head.recipe)
        pretrained, size = config.weights is not None, data_size(model, data.train, data.train_count)
        name, _, why = planner(model)(config.recipe, size, options, pretrained=pretrained)  # a text model: its own
        why.append(devices.describe(batch_of(data.train), lr_scale))
        log.info("%s", why[-1])
        if not resume:
            prepare_run_folder(out, overwrite)  # only once every input checked out: a rejected run leaves nothing
            _write_run_files(out, config, data, head, modality)
        io.write_json(os.path.join(out, RECIPE), dict(recipe=name, requested=config.recipe, plan=why))
        result = run_recipe(model, data.train, data.val, recipe=config.recipe, pretrained=pretrained, options=options,
                            num_examples=data.train_count, cache_features=config.cache_features,
                            cache_dir=config.cache_dir, jit_compile=config.jit_compile,
                            checkpoint_path=os.path.join(out, BEST_MODEL), state=state, verbose=verbose,
                            class_weight=head.class_weight)
    io.write_json(os.path.join(out, HISTORY_JSON), history_columns(state.rows))  # all phases, resumed ones included
    write_history_plot(out)
    task.finish(out, model, data, modality, config)
    modality.finish(out, data)
    return model, result


def _write_run_files(out, config, data, head, modality):
    io.write_json(os.path.join(out, CONFIG), config.to_json(**head.stored))
    io.write_json(os.path.join(out, CLASS_NAMES), data.names)
    io.write_json(os.path.join(out, SPLITS_FILE), data.splits)
    if data.summary is not None:
        io.write_json(os.path.join(out, DATA_SUMMARY), data.summary_json())
    io.write_json(os.path.join(out, DATA_FINGERPRINT), data.prints)
    modality.write_files(out, data)


def modality_part(name):
    """The part for `RunConfig.modality`: an `ImageModality`, or a `TextModality` (a one-line error naming the
    install command without KerasHub)."""
    if name == "image":
        return ImageModality()
    with text_extra_needed():
        from keras_transfer.runs.text_modality import TextModality  # optional: keras-hub, the `text` extra
    return TextModality()
