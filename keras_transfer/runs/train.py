"""Drives a training run from a data folder and writes the run folder (its files: `keras_transfer.layout`)."""

import inspect
import logging
import os

import keras

from keras_transfer import io
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.sources import load_image_folder
from keras_transfer.data.fingerprint import fingerprint
from keras_transfer.data.splits import SPLITS, class_weights
from keras_transfer.errors import KerasTransferError, text_extra_needed
from keras_transfer.layout import (BEST_MODEL, CLASS_NAMES, CONFIG, DATA_FINGERPRINT, DATA_SUMMARY, HISTORY_JSON,
                                   RECIPE, REPORT_TXT, SPLITS_FILE)
from keras_transfer.history import history_columns
from keras_transfer.models.classifier import build_classifier, input_size
from keras_transfer.runs.config import RunConfig, recipe_options
from keras_transfer.runs.task_train import run_task_training
from keras_transfer.runs.folder import (check_resume, check_run_folder, check_same_data, prepare_run_folder,
                                        write_history_plot)
from keras_transfer.serving.evaluation import evaluate
from keras_transfer.serving.loading import load_model
from keras_transfer.training.recipes import data_size, plan_recipe, run_recipe
from keras_transfer.training.budget import DEFAULT_BATCH, batch_for
from keras_transfer.models.freezing import check_strategy
from keras_transfer.training.distribution import setup_devices
from keras_transfer.training.phases import batch_of
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
    """Runs a validated `RunConfig` into the run folder `out` (what `train_from_folder` and resume call); a
    regression or multi-label run goes to `task_train.run_task_training`."""
    if config.task != "classification":
        return run_task_training(config, out, overwrite=overwrite, verbose=verbose, resume=resume)
    config = config.validate(resume=resume)
    if config.modality == "text":
        return _text_training()(config, out, overwrite=overwrite, verbose=verbose, resume=resume)
    plan = setup_devices(config.devices, config.distribution)  # before any op: TensorFlow splits its CPU here
    if resume:
        check_resume(out, config)
    else:
        check_run_folder(out, overwrite)
    data, lr_scale = _load_data(config, plan)
    log.info("%s", data.summary)
    prints = fingerprint(path for split in SPLITS for path in data.splits.paths(split))
    if resume:
        check_same_data(out, data.splits.as_dict(), data.class_names, prints)
    weights_by_class = class_weights(data.splits.labels("train"), data.num_classes) if config.class_weight else None
    with plan.scope():  # one device: no scope; N: building, compiling and fitting on all of them
        keras.utils.set_random_seed(config.seed)
        # Resumed, the weights come from last.keras; L2-SP needs the pretrained ones as its reference: loaded.
        weights = None if resume and not config.l2sp else config.weights
        model = build_classifier(config.backbone, data.num_classes, weights=weights, input_size=config.input_size,
                                 augmentation=config.augmentation, dropout=config.dropout,
                                 class_names=data.class_names, seed=config.seed, precision=config.precision)
        if config.strategy in ("top_blocks", "from_layer"):  # an unknown --layer or too many --blocks: now
            check_strategy(model, config.strategy, n=config.n, layer=config.layer)
        state = TrainingState(out, resume=resume)  # resumed: reads last.keras (weights=None above: from it)
        if state.finished:
            raise KerasTransferError(f"The run in {out} already finished all its epochs; nothing to resume. "
                                     f"Received: resume=True")
        if not resume:
            prepare_run_folder(out, overwrite)  # only once every input checked out: a rejected run leaves nothing
            class_weights_json = weights_by_class and {str(k): v for k, v in weights_by_class.items()}
            io.write_json(os.path.join(out, CONFIG), config.to_json(class_weights=class_weights_json))
            io.write_json(os.path.join(out, CLASS_NAMES), data.class_names)
            io.write_json(os.path.join(out, SPLITS_FILE), data.splits.as_dict())
            io.write_json(os.path.join(out, DATA_SUMMARY), data.summary.as_dict())
            io.write_json(os.path.join(out, DATA_FINGERPRINT), prints)
        result = _run_recipe(config, model, data, out, state, weights_by_class, verbose, plan, lr_scale)
    io.write_json(os.path.join(out, HISTORY_JSON), history_columns(state.rows))  # all phases, resumed ones included
    write_history_plot(out)
    if data.test is not None:
        evaluate_test_split(out, data, batch_size=config.batch_size or DEFAULT_BATCH, fallback=model,
                            antialias=config.antialias)
    _record_skipped(out, data)
    return model, result


def _text_training():
    """`runs.text_train.run_text_training`, or a one-line error naming the install command without keras-hub."""
    with text_extra_needed():
        from keras_transfer.runs.text_train import run_text_training  # optional: keras-hub, the `text` extra
    return run_text_training


def _load_data(config, plan):
    """`(data, learning-rate factor)`: an unset batch size is 32, at most a quarter of the training images
    (`budget.batch_for`), per device; a given one is the global batch (`DataParallel.batch_and_scale`)."""
    first, _ = plan.batch_and_scale(config.batch_size, DEFAULT_BATCH)  # a batch that does not divide: now

    def load(batch_size):
        keras.utils.set_random_seed(config.seed)  # before the datasets exist: tf.data's shuffle seeds mix in the global one
        return load_image_folder(config.data_dir, image_size=config.input_size, batch_size=batch_size,
                                 validation_split=config.validation_split, seed=config.seed,
                                 test_split=config.test_split, strict=config.strict, antialias=config.antialias)

    data = load(first)
    images = len(data.splits.labels("train"))
    if images < plan.devices:  # before the run folder: each device needs an image of every batch
        raise KerasTransferError(f"devices={config.devices} splits each batch over {plan.devices} devices, but "
                                 f"only {images} training image(s) were found: pass devices <= {images} (or leave it "
                                 f"unset for one device). Received: devices={config.devices!r}")
    batch, scale = plan.batch_and_scale(config.batch_size, batch_for(len(data.splits.labels("train"))))
    data = data if batch == first else load(batch)  # tiny data: scanned again
    return plan.even_batches(data, batch), scale


def _record_skipped(out, data):
    """Adds the files that failed to decode during training to `data_summary.json` (and the log)."""
    skipped = data.skipped_while_training()
    summary = io.read_json(os.path.join(out, DATA_SUMMARY))
    by_path = {item["path"]: item for item in skipped + summary.get("skipped_while_training", [])}  # a resumed
    summary["skipped_while_training"] = [by_path[path] for path in sorted(by_path)]  # run keeps what it had named
    io.write_json(os.path.join(out, DATA_SUMMARY), summary)
    if skipped:
        log.info("Skipped while training: %d file(s) that failed to decode (listed in %s).", len(skipped),
                 os.path.join(out, DATA_SUMMARY))


def _run_recipe(config, model, data, out, state, weights_by_class, verbose, plan, lr_scale):
    """The config's recipe (`auto`: chosen by the data), planned from the training split's size; what it chose
    and why is logged and written to `recipe.json`."""
    # history.csv and history.json are written by `state` after every epoch, atomically.
    options = recipe_options(config, layer_decay=config.layer_decay, label_smoothing=config.label_smoothing,
                             l2sp=config.l2sp, lr_scale=lr_scale)
    num_images = len(data.splits.labels("train"))
    name, _, why = plan_recipe(config.recipe, data_size(model, data.train, num_images), options,
                               pretrained=config.weights is not None)
    why.append(plan.describe(batch_of(data.train), lr_scale))
    log.info("%s", why[-1])
    io.write_json(os.path.join(out, RECIPE), dict(recipe=name, requested=config.recipe, plan=why))
    return run_recipe(model, data.train, data.val, recipe=config.recipe, pretrained=config.weights is not None,
                      options=options, num_images=num_images, checkpoint_path=os.path.join(out, BEST_MODEL),
                      cache_features=config.cache_features, cache_dir=config.cache_dir, jit_compile=config.jit_compile,
                      state=state, verbose=verbose, class_weight=weights_by_class)


def evaluate_test_split(out, data, *, batch_size, fallback, antialias=False):
    """Evaluates `best.keras` (else `fallback`) on the held-out test split into the run folder: `report.json`,
    `report.txt` and, with matplotlib, `confusion_matrix.png`."""
    best_path = os.path.join(out, BEST_MODEL)
    best = load_model(out)[0] if os.path.isfile(best_path) else fallback
    test = make_dataset(data.splits.paths("test"), data.splits.labels("test"), image_size=input_size(best),
                        batch_size=batch_size, antialias=antialias, skipped=data.skipped["test"], include_paths=True,
                        fill_skipped=False)
    report = evaluate(best, test, class_names=data.class_names, out=out)
    log.info("Test split (%d images): accuracy %.4f, top-%d accuracy %.4f; full report in %s", report.n,
             report.accuracy, report.top_k, report.top_k_accuracy, os.path.join(out, REPORT_TXT))
    return report
