"""One run configuration: every setting of a training run, declared once.

`RunConfig` is a frozen dataclass. Each field carries its default, its check and its command-line help, so:
- `train_from_folder(data_dir, out, **settings)` takes exactly its fields as keywords;
- `validate()` is the one place a run's settings are checked (`config_checks`: one `KerasTransferError` line
  each), before anything is loaded, built or written; a setting the run would not use is refused;
- `config.json` is written from it (`to_json`) and read back into it (`from_json`, `config_migration`), with the
  environment the run ran in (Keras, backend, package version) in a block of its own;
- resume is "the saved config, with these overrides" (`runs.resume`);
- `keras-transfer train`'s flags are generated from its fields (`config_args`).

Adding a training option is one field here plus its use.
"""

import dataclasses
import os

import keras

from keras_transfer.errors import KerasTransferError, did_you_mean, unknown_name
from keras_transfer.layout import RUN_FORMAT
from keras_transfer.models.precision import PRECISIONS, parse_jit_compile
from keras_transfer.runs.config_checks import (
    check_augmentation_name, check_backbone_name, check_cache_folder, check_data_source, check_decay, check_dropout,
    check_field, check_flag, check_fraction, check_image_settings, check_jit_compile_value, check_learning_rate,
    check_non_negative_int, check_optional_positive_int, check_optional_text, check_penalty, check_positive_int,
    check_separator, check_text_settings, check_used, check_weights_source, fail, none_or)
from keras_transfer.runs.config_migration import migrate
from keras_transfer.training.distribution import DISTRIBUTIONS, check_devices, parse_devices
from keras_transfer.training.recipes import RECIPES, STRATEGIES, RecipeOptions
from keras_transfer.version import __version__
from keras_transfer.vocabulary import LOSSES, MODALITIES, TASKS

TASK_LOSSES = (None,) + tuple(loss for losses in LOSSES.values() for loss in losses)
TEXT_DEFAULT_BACKBONE = "all_minilm_l6_v2"  # --modality text with the image default backbone


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
                        "of path,target(s), a text table of text,target); multilabel: several labels (path,labels, "
                        "text,labels)", choices=TASKS)
    loss: str = setting(None, "regression: mse (default), mae, huber; multilabel: bce (default), focal",
                        choices=TASK_LOSSES, type=str)
    label_separator: str = setting("|", "multilabel CSV: the separator between an example's labels",
                                   check=check_separator)
    modality: str = setting("image", "what the inputs are", choices=MODALITIES)
    backbone: str = setting("mobilenetv2", "registry name (see `keras-transfer backbones`)", check=check_backbone_name)
    weights: str = setting("imagenet", "imagenet | none | PATH to a weights file", check=check_weights_source,
                           type=none_or)
    input_size: int = setting(None, "square input side (default: the backbone's)", check=check_optional_positive_int,
                              type=int)
    recipe: str = setting("auto", "auto picks by the data (lp_ft with pretrained weights, scratch without); "
                          "two_phase: head then top blocks at constant rates; lp_ft: head to convergence, then "
                          "fine-tuning with per-block rates; gradual: one more block per stage; scratch: every layer",
                          choices=RECIPES)
    strategy: str = setting("top_blocks", "head_only trains the head; the others run head first, then unfreeze "
                            "this way", choices=STRATEGIES)
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
                continue  # checked by `check_text_settings`
            if meta["check"] is not None and not (resume and field.name == "weights"):
                check_field(field, value)
        check_used(self, {f.name: f.default for f in self.fields()})
        if self.modality == "text":
            backbone = TEXT_DEFAULT_BACKBONE if self.backbone == RunConfig.backbone else self.backbone
            check_text_settings(self, backbone)
            return self._resolved(backbone=backbone)
        spec, input_size = check_image_settings(self)
        return self._resolved(backbone=spec.name, input_size=input_size)

    def _resolved(self, **changes):
        """The config with absolute `data_dir` / `cache_dir`, `jit_compile` parsed, and `changes`."""
        return self.replace(data_dir=os.path.abspath(self.data_dir), jit_compile=parse_jit_compile(self.jit_compile),
                            cache_dir=self.cache_dir and os.path.abspath(self.cache_dir), **changes)

    def differences(self, other):
        """`{name: (self's value, other's value)}` for the settings that differ."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in self.fields()
                if getattr(self, f.name) != getattr(other, f.name)}

    def to_json(self, **extra):
        """The `config.json` form: `{"run_format", "settings", "environment", **extra}`."""
        return dict(run_format=RUN_FORMAT, settings=dataclasses.asdict(self), environment=environment(), **extra)

    @classmethod
    def from_json(cls, stored):
        """`(RunConfig, environment)` from a `config.json` dict (also what earlier versions wrote:
        `config_migration`)."""
        settings, env = migrate(stored, {f.name for f in cls.fields()})
        return cls(**settings), env


def recipe_options(config, **fields):
    """The `RecipeOptions` every run takes from its `RunConfig` (freezing, epochs, rates, batch, head L2, per-block
    rates, L2-SP: a text run's last two are the defaults, `NOT_USED`), plus `fields`: what a run's task and devices
    add (label smoothing, the devices' rate scale)."""
    return RecipeOptions(strategy=config.strategy, n=config.n, layer=config.layer, head_epochs=config.epochs,
                         fine_tune_epochs=config.fine_tune_epochs or config.epochs,
                         head_learning_rate=config.learning_rate,
                         fine_tune_learning_rate=config.fine_tune_learning_rate, batch_size=config.batch_size,
                         head_l2=config.head_l2, layer_decay=config.layer_decay, l2sp=config.l2sp, **fields)


def environment():
    """What the run ran in: Keras, its backend, keras_transfer (compared on resume, not settings)."""
    return dict(keras_backend=keras.backend.backend(), keras_version=keras.__version__,
                keras_transfer_version=__version__)
