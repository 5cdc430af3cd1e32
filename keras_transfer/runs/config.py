"""One run configuration: every setting of a training run, declared once.

`RunConfig` is a frozen dataclass. Each field carries its default, its check and its command-line help, so:
- `train_from_folder(data_dir, out, **settings)` takes exactly its fields as keywords;
- `validate()` is the one place a run's settings are checked (one `KerasTransferError` line each: what was
  wrong, what is allowed, what was received), before anything is loaded, built or written;
- `config.json` is written from it (`to_json`) and read back into it (`from_json`), with the environment the
  run ran in (Keras, backend, package version) in a block of its own;
- resume is "the saved config, with these overrides" (`runs.resume`);
- `keras-transfer train`'s flags are generated from its fields (`add_flags`, `given_settings`): a flag the
  user gave is a key that is present, and the CLI's defaults are the dataclass's.

Adding a training option is one field here plus its use.
"""

import argparse
import dataclasses
import os

import keras

from keras_transfer.errors import KerasTransferError, did_you_mean, unknown_name
from keras_transfer.layout import RUN_FORMAT
from keras_transfer.version import __version__
from keras_transfer.models.augmentation import AUGMENTATIONS
from keras_transfer.models.precision import PRECISIONS, parse_jit_compile
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.distribution import DISTRIBUTIONS, check_devices, parse_devices
from keras_transfer.models.text_registry import check_sequence_length, resolve_text_spec
from keras_transfer.training.recipes import RECIPES, UNFREEZE, RecipeOptions
from keras_transfer.vocabulary import IMAGE_WEIGHTS, LOSSES, MODALITIES, TASKS

TASK_LOSSES = (None,) + tuple(loss for losses in LOSSES.values() for loss in losses)
TEXT_DEFAULT_BACKBONE = "all_minilm_l6_v2"  # --modality text with the image default backbone
TEXT_SOURCES = (".csv", ".tsv", ".jsonl")
RUN_STRATEGIES = ("head_only",) + UNFREEZE
# Upper limits: past them a run cannot work (seeds are 32-bit) or would exhaust memory before saying why.
MAXIMUM = dict(input_size=2048, epochs=100_000, fine_tune_epochs=100_000, batch_size=65_536, n=1000,
               seed=2 ** 32 - 1)


def _fail(message, **received):
    shown = ", ".join(f"{k}={v!r}" for k, v in received.items())
    return KerasTransferError(f"{message} Received: {shown}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Field checks: each takes (name, value) and raises a one-line KerasTransferError.

def check_positive_int(name, value, minimum=1):
    if not _is_int(value) or value < minimum:
        raise _fail(f"{name} must be an integer >= {minimum}.", **{name: value})
    if name in MAXIMUM and value > MAXIMUM[name]:
        raise _fail(f"{name} must be an integer <= {MAXIMUM[name]}.", **{name: value})


def check_optional_positive_int(name, value):
    if value is not None:
        check_positive_int(name, value)


def check_non_negative_int(name, value):
    check_positive_int(name, value, minimum=0)


def check_fraction(name, value):
    if not _is_number(value) or not 0 <= value < 1:
        raise _fail(f"{name} must be a fraction in [0, 1).", **{name: value})


def check_decay(name, value):
    if not _is_number(value) or not 0 < value <= 1:
        raise _fail(f"{name} must be in (0, 1] (the top block trains at the rate x {name}, the next at x {name}^2).",
                    **{name: value})


def check_penalty(name, value):
    if not _is_number(value) or not 0 <= value < float("inf"):
        raise _fail(f"{name} must be a number >= 0.", **{name: value})


def check_dropout(name, value):
    if not _is_number(value) or not 0 <= value < 1:
        raise _fail(f"{name} must be in [0, 1).", **{name: value})


def check_learning_rate(name, value):
    if value is not None and (not _is_number(value) or not 0 < value < float("inf")):
        raise _fail(f"{name} must be a positive number (e.g. 1e-3).", **{name: value})


def check_flag(name, value):
    if not isinstance(value, bool):
        raise _fail(f"{name} must be True or False.", **{name: value})


def check_data_source(name, value):
    if value is None:
        raise _fail("train needs data_dir (a folder of class subfolders or a manifest), unless --resume continues "
                    "the run in --out.", data_dir=value)
    if not isinstance(value, (str, os.PathLike)) or not os.path.exists(value):
        raise _fail(f"Data folder or manifest not found: {value}.", data_dir=value)
    if os.path.isfile(value) and not os.fspath(value).lower().endswith((".csv", ".json")):
        raise _fail("data_dir must be a folder of class subfolders or a .csv/.json manifest.", data_dir=value)


def check_weights_source(name, value):
    if value in IMAGE_WEIGHTS:
        return
    if not isinstance(value, (str, os.PathLike)) or not os.path.isfile(value):
        raise _fail(f"Weights file not found: {value}. weights must be 'imagenet', None ('none' on the command "
                    "line) or the path of an existing weights file.", weights=value)


def check_separator(name, value):
    if not isinstance(value, str) or len(value) != 1 or value in ',"\n\r':
        raise _fail("label_separator must be one character, not a comma, quote or newline (e.g. '|' or ';').",
                    label_separator=value)


def check_backbone_name(name, value):
    get_backbone_spec(value)  # raises with "Did you mean"


def check_optional_text(name, value):
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise _fail(f"{name} must be text or None.", **{name: value})


def check_cache_folder(name, value):
    check_optional_text(name, value)
    if value is not None and os.path.exists(value) and not os.path.isdir(value):
        raise _fail(f"{name} must be a folder (new or existing) to stream the cached features to; {value} is a "
                    "file.", **{name: value})


def check_augmentation_name(name, value):
    if value not in AUGMENTATIONS:
        raise unknown_name(name, value, AUGMENTATIONS)


def check_jit_compile_value(name, value):
    parse_jit_compile(value)


def _none_or(text):
    return None if text.lower() == "none" else text


def _check_field(field, value):
    """Runs a field's check; an error about a field whose flag has another name (`n`: `--blocks`) names the flag."""
    try:
        field.metadata["check"](field.name, value)
    except KerasTransferError as error:
        flag = field.metadata["cli"]
        if flag in (None, "positional"):
            raise
        raise KerasTransferError(f"{error} (on the command line: {flag})") from None


def setting(default, help, *, check=None, choices=None, cli=None, type=None, cli_choices=None):
    """A `RunConfig` field: its default, its check (or allowed `choices`) and its command-line flag.

    Args:
        default: the default value (the CLI's too).
        help: the flag's help text.
        check: `check(name, value)` raising a `KerasTransferError`; `choices` makes one.
        choices: the allowed values (the CLI lets argparse enforce them, `None` aside).
        cli: the flag's name when it is not `--<field-name>`, or `"positional"`.
        type: parses the flag's text (default: the type of `default`; a bool default makes a switch).
        cli_choices: the texts argparse allows, where they are not `choices`.
    """
    return dataclasses.field(default=default, metadata=dict(help=help, check=check, choices=choices, cli=cli,
                                                            type=type, cli_choices=cli_choices))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run (see `train_from_folder` for what each does)."""

    data_dir: str = setting(None, "folder with one subfolder of images per class (or train/ val/ test/ subfolders "
                            "of those), or a CSV/JSON manifest of path,label rows (with --resume: optional)",
                            check=check_data_source, cli="positional")
    task: str = setting("classification", "what the head predicts: one class; regression: numbers (a manifest "
                        "of path,target(s)); multilabel: several labels (a manifest of path,labels)", choices=TASKS)
    loss: str = setting(None, "regression: mse (default), mae, huber; multilabel: bce (default), focal",
                        choices=TASK_LOSSES, type=str)
    label_separator: str = setting("|", "multilabel CSV: the separator between an image's labels",
                                   check=check_separator)
    modality: str = setting("image", "what the inputs are", choices=MODALITIES)
    backbone: str = setting("mobilenetv2", "registry name (see `keras-transfer backbones`)", check=check_backbone_name)
    weights: str = setting("imagenet", "imagenet | none | PATH to a weights file", check=check_weights_source,
                           type=_none_or)
    input_size: int = setting(None, "square input side (default: the backbone's)", check=check_optional_positive_int,
                              type=int)
    recipe: str = setting("auto", "auto picks by the data (lp_ft with pretrained weights, scratch without); "
                          "two_phase: head then top blocks at constant rates; lp_ft: head to convergence, then "
                          "fine-tuning with per-block rates; gradual: one more block per stage; scratch: every layer",
                          choices=RECIPES)
    strategy: str = setting("top_blocks", "head_only trains the head; the others run head first, then unfreeze "
                            "this way", choices=RUN_STRATEGIES)
    n: int = setting(2, "top blocks to unfreeze (top_blocks, gradual)", check=check_positive_int, cli="--blocks")
    layer: str = setting(None, "first backbone layer to unfreeze (from_layer)", check=check_optional_text, type=str)
    epochs: int = setting(None, "epochs of the head phase (default: the recipe's step budget)",
                          check=check_optional_positive_int, type=int)
    fine_tune_epochs: int = setting(None, "epochs of the fine-tuning phase (default: --epochs if given, else the "
                                    "recipe's step budget)", check=check_optional_positive_int, type=int)
    batch_size: int = setting(None, "batch size (default: 32, at most a quarter of the training images)",
                              check=check_optional_positive_int, type=int)
    validation_split: float = setting(0.2, "share of each class held out for validation", check=check_fraction)
    test_split: float = setting(0.0, "share of each class held out for testing", check=check_fraction)
    strict: bool = setting(False, "decode every image before training and stop if any is unreadable (default: "
                           "headers are read; a damaged image is named and skipped when first decoded)",
                           check=check_flag)
    antialias: bool = setting(False, "antialiased downscaling of the images, as PIL resizes (about twice the CPU "
                              "per image; default off, as Keras's own loader)", check=check_flag)
    class_weight: str = setting(None, "balanced: weigh classes by n / (k * count); multilabel: each label's "
                                "positives by negatives / positives, in [1, 10]", choices=(None, "balanced"),
                                type=str)
    augmentation: str = setting("light", "none | flip | light | geometric", check=check_augmentation_name)
    dropout: float = setting(0.2, "dropout rate before the head, in [0, 1)", check=check_dropout)
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy loss in every phase",
                                     check=check_fraction)
    learning_rate: float = setting(None, "head phase rate (default 1e-3)", check=check_learning_rate, type=float)
    fine_tune_learning_rate: float = setting(None, "fine-tuning (peak) rate (default: 1e-4 for lp_ft and gradual, "
                                             "1e-5 for two_phase, 3e-4 for scratch)", check=check_learning_rate,
                                             type=float)
    l2sp: float = setting(None, "L2-SP strength alpha: penalise the backbone's distance from its pretrained "
                          "weights (e.g. 0.01; default off)", check=check_learning_rate, type=float)
    head_l2: float = setting(0.0, "L2 penalty on the head's kernel in the gradient phases", check=check_penalty)
    layer_decay: float = setting(0.5, "per-block rates of lp_ft and gradual: the top block trains at the rate x "
                                 "this, the next at x this^2", check=check_decay)
    seed: int = setting(1337, "seed of the split, shuffling, augmentation and initial head", check=check_non_negative_int)
    cache_features: bool = setting(False, "train the head phase on backbone features computed once (needs "
                                   "--augmentation none)", check=check_flag)
    cache_dir: str = setting(None, "stream cached features to this folder (default: in memory)", check=check_cache_folder,
                             type=str)
    precision: str = setting("float32", "numeric precision of the model", choices=PRECISIONS)
    jit_compile: object = setting("auto", "XLA compilation (auto: off on a CPU-only TensorFlow, on for JAX)",
                                  check=check_jit_compile_value, type=parse_jit_compile,
                                  cli_choices=("auto", "true", "false"))
    devices: object = setting("auto", "auto (one device) | all | N: data-parallel training over N devices; a given "
                              "--batch-size is the global batch (must divide by N), an unset one is N x the "
                              "single-device batch with the learning rates x N. TensorFlow without GPUs splits "
                              "the CPU into N logical devices; JAX on a CPU needs XLA_FLAGS="
                              "--xla_force_host_platform_device_count=N", check=check_devices, type=parse_devices)
    distribution: str = setting("data_parallel", "how several devices share the work (keras.distribution on JAX, "
                                "tf.distribute on TensorFlow)", choices=DISTRIBUTIONS)
    sequence_length: int = setting(None, "tokens per text, --modality text (default: the encoder's, 128)",
                                   check=check_optional_positive_int, type=int)

    @classmethod
    def fields(cls):
        """The settings' `dataclasses.Field`s, in order."""
        return dataclasses.fields(cls)

    @classmethod
    def check_names(cls, settings):
        """Raises a one-line error, naming the closest field, for a key of `settings` that is not a field."""
        names = [f.name for f in cls.fields()]
        for key, value in settings.items():
            if key not in names:
                raise KerasTransferError(f"Unknown training setting '{key}'.{did_you_mean(key, names)} Allowed: "
                                         f"{', '.join(names)}. Received: {key}={value!r}")

    @classmethod
    def create(cls, **settings):
        """A `RunConfig` from keyword settings (an unknown name is a one-line error)."""
        cls.check_names(settings)
        return cls(**settings)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def validate(self, *, resume=False):
        """Checks every setting, then the settings that depend on each other; raises the first problem.

        `resume=True`: the weights come from the run's `last.keras`, so a weights file need not exist any more.

        Returns:
            The config with `"auto"`-style values resolved: the backbone's canonical name, its default
            `input_size`, absolute `data_dir` / `cache_dir`, `jit_compile` parsed.

        Example:
        >>> RunConfig(data_dir="photos", backbone="vgg16", input_size=16).validate()  # doctest: +SKIP
        KerasTransferError: input_size 16 is below vgg16's minimum of 32 pixels. Received: input_size=16
        """
        for field in self.fields():
            value, meta = getattr(self, field.name), field.metadata
            if meta["choices"] is not None and value not in meta["choices"]:
                raise unknown_name(field.name, value, [str(c) for c in meta["choices"]])
            if self.modality == "text" and field.name in ("backbone", "data_dir", "weights"):
                continue  # checked by `_validate_text`
            if meta["check"] is not None and not (resume and field.name == "weights"):
                _check_field(field, value)
        if self.modality == "text":
            if self.task != "classification":
                raise _fail(f"modality is not supported for task {self.task!r}: a text model classifies; this task takes "
                            "images (modality='image').",
                            modality=self.modality)
            return self._validate_text()
        spec = get_backbone_spec(self.backbone)
        input_size = self.input_size or spec.default_size
        if spec.min_size and input_size < spec.min_size:
            raise _fail(f"input_size {input_size} is below {spec.name}'s minimum of {spec.min_size} pixels.",
                        input_size=input_size)
        if self.validation_split + self.test_split >= 1:
            raise _fail("validation_split + test_split must leave images to train on (sum < 1).",
                        validation_split=self.validation_split, test_split=self.test_split)
        if self.strategy == "from_layer" and not self.layer:
            raise _fail("strategy='from_layer' needs layer, the first backbone layer to unfreeze.", layer=self.layer)
        if self.cache_features and self.augmentation != "none":
            raise _fail("cache_features computes each image's features once, so it cannot see augmented images: "
                        "pass augmentation='none' (--augmentation none) or drop cache_features.",
                        cache_features=self.cache_features, augmentation=self.augmentation)
        if self.task != "classification":
            check_task_settings(self)
        elif self.loss is not None:
            raise _fail("loss picks a regression or multilabel loss; a classifier trains with cross-entropy.",
                        loss=self.loss)
        return self.replace(backbone=spec.name, input_size=input_size, data_dir=os.path.abspath(self.data_dir),
                            cache_dir=self.cache_dir and os.path.abspath(self.cache_dir),
                            jit_compile=parse_jit_compile(self.jit_compile))

    def _validate_text(self):
        """`validate` for `modality="text"`: a text encoder, a text table or folder, pretrained or random weights."""
        backbone = TEXT_DEFAULT_BACKBONE if self.backbone == RunConfig.backbone else self.backbone
        spec, _ = resolve_text_spec(backbone)  # a registry name or a folder, its files checked
        if self.sequence_length is not None:
            check_sequence_length(self.sequence_length, spec.max_sequence_length, spec.name)
        source = self.data_dir
        if source is None or not os.path.exists(source) or (
                os.path.isfile(source) and not os.fspath(source).lower().endswith(TEXT_SOURCES)):
            raise _fail("Text data must be a folder of class subfolders of .txt files or a .csv/.tsv/.jsonl table "
                        "of text,label rows.", data_dir=source)
        if self.weights not in IMAGE_WEIGHTS:
            raise _fail("A text encoder takes weights 'imagenet' (its pretrained weights) or none (random "
                        "initialisation).", weights=self.weights)
        if self.strategy == "from_layer" and not self.layer:
            raise _fail("strategy='from_layer' needs layer, the first encoder layer to unfreeze "
                        "(e.g. transformer_layer_4).", layer=self.layer)
        return self.replace(backbone=backbone, data_dir=os.path.abspath(source),
                            cache_dir=self.cache_dir and os.path.abspath(self.cache_dir),
                            jit_compile=parse_jit_compile(self.jit_compile))

    def differences(self, other):
        """`{name: (self's value, other's value)}` for the settings that differ."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in self.fields()
                if getattr(self, f.name) != getattr(other, f.name)}

    def to_json(self, **extra):
        """The `config.json` form: `{"run_format", "settings", "environment", **extra}`."""
        return dict(run_format=RUN_FORMAT, settings=dataclasses.asdict(self), environment=environment(), **extra)

    @classmethod
    def from_json(cls, stored):
        """`(RunConfig, environment)` from a `config.json` dict (also the flat form keras_transfer 0.1.0 wrote)."""
        if "settings" in stored:
            settings, env = stored["settings"], dict(stored.get("environment") or {}, run_format=stored.get("run_format"))
        else:  # 0.1.0: settings and environment side by side
            names = {f.name for f in cls.fields()}
            settings = {k: v for k, v in stored.items() if k in names}
            env = {k: v for k, v in stored.items() if k not in names}
        known = {f.name for f in cls.fields()}
        settings = {k: v for k, v in settings.items() if k in known}
        settings.setdefault("antialias", True)  # written before 0.2: its images were resized by PIL, antialiased
        settings.setdefault("recipe", "two_phase")  # written before recipes had names: they ran two_phase
        settings.setdefault("epochs", 5)  # and counted in epochs, 5 by default
        settings.setdefault("batch_size", 32)
        return cls(**settings), env


def check_task_settings(config):
    """The settings a regression or multi-label run cannot take (one line each)."""
    task, allowed = config.task, LOSSES[config.task]
    if config.loss is not None and config.loss not in allowed:
        raise _fail(f"loss {config.loss!r} does not fit task {task!r}. Allowed: {', '.join(allowed)}.", loss=config.loss)
    if not os.path.isfile(config.data_dir):
        raise _fail(f"A {task} run reads a .csv or .json manifest (a folder of class subfolders holds classes).",
                    data_dir=config.data_dir)
    if task == "regression" and config.class_weight is not None:
        raise _fail("class_weight weighs classes or multilabel's rare labels; a regression run has neither.",
                    class_weight=config.class_weight)
    for name, value, off in (("label_smoothing", config.label_smoothing, 0.0), ("devices", config.devices, "auto")):
        if value != off:
            raise _fail(f"{name} is not supported for task {task!r}: it applies to classification runs.",
                        **{name: value})


def recipe_options(config, **fields):
    """The `RecipeOptions` every run takes from its `RunConfig` (freezing, epochs, rates, batch, head L2), plus
    `fields`: what a run's kind adds (image runs: layer decay, label smoothing, L2-SP, the devices' rate scale)."""
    return RecipeOptions(strategy=config.strategy, n=config.n, layer=config.layer, head_epochs=config.epochs,
                         fine_tune_epochs=config.fine_tune_epochs or config.epochs,
                         head_learning_rate=config.learning_rate,
                         fine_tune_learning_rate=config.fine_tune_learning_rate, batch_size=config.batch_size,
                         head_l2=config.head_l2, **fields)


def environment():
    """What the run ran in: Keras, its backend, keras_transfer (compared on resume, not settings)."""
    return dict(keras_backend=keras.backend.backend(), keras_version=keras.__version__,
                keras_transfer_version=__version__)


def _flag_name(field):
    return field.metadata["cli"] or "--" + field.name.replace("_", "-")


def add_flags(parser):
    """Adds one flag per `RunConfig` field to an argparse parser; a flag not given leaves no attribute."""
    for field in RunConfig.fields():
        meta, name = field.metadata, _flag_name(field)
        shown = "" if "default" in meta["help"] or field.default in (None, False) else f" (default: {field.default})"
        kwargs = dict(help=meta["help"] + shown, default=argparse.SUPPRESS)
        if name == "positional":
            parser.add_argument(field.name, nargs="?", help=meta["help"], default=argparse.SUPPRESS)
            continue
        if isinstance(field.default, bool):
            parser.add_argument(name, dest=field.name, action="store_true", **kwargs)
            continue
        parse = meta["type"] or type(field.default)
        choices = meta["cli_choices"] or meta["choices"]
        if choices is not None:
            kwargs["choices"] = [c for c in choices if c is not None]
            parse = str
        parser.add_argument(name, dest=field.name, type=parse, **kwargs)


def given_settings(args):
    """The settings given on the command line, by field name (flags not given are absent)."""
    names = {f.name for f in RunConfig.fields()}
    given = {k: v for k, v in vars(args).items() if k in names}
    if "jit_compile" in given:
        given["jit_compile"] = parse_jit_compile(given["jit_compile"])
    return given
