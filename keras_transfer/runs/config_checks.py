"""The checks of a run's settings: one per `RunConfig` field, then the settings that depend on each other.

Each raises a one-line `KerasTransferError`: what was wrong, what is allowed, what was received. A setting a kind
of run does not use (`NOT_USED`) is refused when it differs from its default, never silently ignored.
"""

import os

from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.models.augmentation import AUGMENTATIONS
from keras_transfer.models.precision import parse_jit_compile
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.models.text_registry import check_sequence_length, resolve_text_spec
from keras_transfer.vocabulary import IMAGE_WEIGHTS, LOSSES, TEXT_TABLES

# The settings a kind of run does not use: text classification runs, then image runs by task (a text regression or
# multi-label run: the text ones but loss and label_separator, with the task's but sequence_length).
NOT_USED = {
    "text": ("input_size", "antialias", "augmentation", "strict", "precision", "jit_compile", "l2sp", "layer_decay",
             "label_separator", "loss", "devices", "distribution"),
    "classification": ("sequence_length", "label_separator"),
    "regression": ("sequence_length", "strict", "label_separator", "label_smoothing", "devices", "distribution"),
    "multilabel": ("sequence_length", "strict", "label_smoothing", "devices", "distribution"),
}

# Upper limits: past them a run cannot work (seeds are 32-bit) or would exhaust memory before saying why.
MAXIMUM = dict(input_size=2048, epochs=100_000, fine_tune_epochs=100_000, batch_size=65_536, n=1000,
               seed=2 ** 32 - 1)


def fail(message, **received):
    shown = ", ".join(f"{k}={v!r}" for k, v in received.items())
    return KerasTransferError(f"{message} Received: {shown}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Field checks: each takes (name, value) and raises a one-line KerasTransferError.

def check_positive_int(name, value, minimum=1):
    if not _is_int(value) or value < minimum:
        raise fail(f"{name} must be an integer >= {minimum}.", **{name: value})
    if name in MAXIMUM and value > MAXIMUM[name]:
        raise fail(f"{name} must be an integer <= {MAXIMUM[name]}.", **{name: value})


def check_optional_positive_int(name, value):
    if value is not None:
        check_positive_int(name, value)


def check_non_negative_int(name, value):
    check_positive_int(name, value, minimum=0)


def check_fraction(name, value):
    if not _is_number(value) or not 0 <= value < 1:
        raise fail(f"{name} must be a fraction in [0, 1).", **{name: value})


def check_decay(name, value):
    if not _is_number(value) or not 0 < value <= 1:
        raise fail(f"{name} must be in (0, 1] (the top block trains at the rate x {name}, the next at x {name}^2).",
                   **{name: value})


def check_penalty(name, value):
    if not _is_number(value) or not 0 <= value < float("inf"):
        raise fail(f"{name} must be a number >= 0.", **{name: value})


def check_dropout(name, value):
    if not _is_number(value) or not 0 <= value < 1:
        raise fail(f"{name} must be in [0, 1).", **{name: value})


def check_learning_rate(name, value):
    if value is not None and (not _is_number(value) or not 0 < value < float("inf")):
        raise fail(f"{name} must be a positive number (e.g. 1e-3).", **{name: value})


def check_flag(name, value):
    if not isinstance(value, bool):
        raise fail(f"{name} must be True or False.", **{name: value})


def check_data_source(name, value):
    if value is None:
        raise fail("train needs data_dir (a folder of class subfolders or a manifest), unless --resume continues "
                   "the run in --out.", data_dir=value)
    if not isinstance(value, (str, os.PathLike)) or not os.path.exists(value):
        raise fail(f"Data folder or manifest not found: {value}.", data_dir=value)
    if os.path.isfile(value) and not os.fspath(value).lower().endswith((".csv", ".json")):
        raise fail("data_dir must be a folder of class subfolders or a .csv/.json manifest.", data_dir=value)


def check_weights_source(name, value):
    if value in IMAGE_WEIGHTS:
        return
    if not isinstance(value, (str, os.PathLike)) or not os.path.isfile(value):
        raise fail(f"Weights file not found: {value}. weights must be 'imagenet', None ('none' on the command "
                   "line) or the path of an existing weights file.", weights=value)


def check_separator(name, value):
    if not isinstance(value, str) or len(value) != 1 or value in ',"\n\r':
        raise fail("label_separator must be one character, not a comma, quote or newline (e.g. '|' or ';').",
                   label_separator=value)


def check_backbone_name(name, value):
    get_backbone_spec(value)  # raises with "Did you mean"


def check_optional_text(name, value):
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise fail(f"{name} must be text or None.", **{name: value})


def check_cache_folder(name, value):
    check_optional_text(name, value)
    if value is not None and os.path.exists(value) and not os.path.isdir(value):
        raise fail(f"{name} must be a folder (new or existing) to stream the cached features to; {value} is a "
                   "file.", **{name: value})


def check_augmentation_name(name, value):
    if value not in AUGMENTATIONS:
        raise unknown_name(name, value, AUGMENTATIONS)


def check_jit_compile_value(name, value):
    parse_jit_compile(value)


def none_or(text):
    """The command line's `none` as `None`, any other text as it is."""
    return None if text.lower() == "none" else text


def check_field(field, value):
    """Runs a field's check; an error about a field whose flag has another name (`n`: `--blocks`) names the flag."""
    try:
        field.metadata["check"](field.name, value)
    except KerasTransferError as error:
        flag = field.metadata["cli"]
        if flag in (None, "positional"):
            raise
        raise KerasTransferError(f"{error} (on the command line: {flag})") from None


def check_task_settings(config):
    """The settings a regression or multi-label run cannot take (one line each)."""
    task, allowed = config.task, LOSSES[config.task]
    if config.loss is not None and config.loss not in allowed:
        raise fail(f"loss {config.loss!r} does not fit task {task!r}. Allowed: {', '.join(allowed)}.", loss=config.loss)
    if not os.path.isfile(config.data_dir):
        raise fail(f"A {task} run reads a .csv or .json manifest (a folder of class subfolders holds classes).",
                   data_dir=config.data_dir)
    if task == "regression" and config.class_weight is not None:
        raise fail("class_weight weighs classes or multilabel's rare labels; a regression run has neither.",
                   class_weight=config.class_weight)


def check_used(config, defaults):
    """Refuses a setting that `config`'s kind of run does not use (`NOT_USED`), given other than its default."""
    kind = "text" if config.modality == "text" else config.task
    where = "modality 'text'" if kind == "text" else f"task {kind!r}"
    names = NOT_USED[kind]
    if kind == "text" and config.task != "classification":  # the text refusals but the task's own settings
        names = [n for n in NOT_USED["text"] if n not in ("loss", "label_separator")] + [
            n for n in NOT_USED[config.task] if n != "sequence_length"]
        where = f"modality 'text', task {config.task!r}"
    for name in names:
        value = getattr(config, name)
        if value != defaults[name]:
            raise fail(f"{name} is not supported for {where}: such a run does not use it. Leave it unset (default "
                       f"{defaults[name]!r}).", **{name: value})
    if config.distribution != defaults["distribution"] and config.devices in ("auto", 1):
        raise fail("distribution says how several devices share the work: give devices (all or N > 1) too.",
                   distribution=config.distribution, devices=config.devices)
    if config.layer is not None and config.strategy != "from_layer":
        raise fail("layer names where strategy='from_layer' starts unfreezing; this run's strategy does not read it.",
                   layer=config.layer, strategy=config.strategy)
    if config.cache_dir is not None and not config.cache_features:
        raise fail("cache_dir is where cache_features streams the features: pass cache_features=True (--cache-features) "
                   "too, or drop cache_dir.", cache_dir=config.cache_dir)


def check_image_settings(config):
    """The settings of an image run that depend on each other; returns `(backbone spec, input_size)`."""
    spec = get_backbone_spec(config.backbone)
    input_size = config.input_size or spec.default_size
    if spec.min_size and input_size < spec.min_size:
        raise fail(f"input_size {input_size} is below {spec.name}'s minimum of {spec.min_size} pixels.",
                   input_size=input_size)
    if config.validation_split + config.test_split >= 1:
        raise fail("validation_split + test_split must leave images to train on (sum < 1).",
                   validation_split=config.validation_split, test_split=config.test_split)
    if config.strategy == "from_layer" and not config.layer:
        raise fail("strategy='from_layer' needs layer, the first backbone layer to unfreeze.", layer=config.layer)
    if config.cache_features and config.augmentation != "none":
        raise fail("cache_features computes each image's features once, so it cannot see augmented images: "
                   "pass augmentation='none' (--augmentation none) or drop cache_features.",
                   cache_features=config.cache_features, augmentation=config.augmentation)
    if config.task != "classification":
        check_task_settings(config)
    elif config.loss is not None:
        raise fail("loss picks a regression or multilabel loss; a classifier trains with cross-entropy.",
                   loss=config.loss)
    return spec, input_size


def check_text_settings(config, backbone):
    """The settings of a text run: a text encoder (`backbone`), a text table or folder, pretrained or random
    weights."""
    spec, _ = resolve_text_spec(backbone)  # a registry name or a folder, its files checked
    if config.sequence_length is not None:
        check_sequence_length(config.sequence_length, spec.max_sequence_length, spec.name)
    source = config.data_dir
    if source is None or not os.path.exists(source) or (
            os.path.isfile(source) and not os.fspath(source).lower().endswith(TEXT_TABLES)):
        raise fail("Text data must be a folder of class subfolders of .txt files or a .csv/.tsv/.jsonl table "
                   "of text,label rows.", data_dir=source)
    if config.task != "classification":
        check_task_settings(config)
    if config.weights not in IMAGE_WEIGHTS:
        raise fail("A text encoder takes weights 'imagenet' (its pretrained weights) or none (random "
                   "initialisation).", weights=config.weights)
    if config.strategy == "from_layer" and not config.layer:
        raise fail("strategy='from_layer' needs layer, the first encoder layer to unfreeze "
                   "(e.g. transformer_layer_4).", layer=config.layer)
