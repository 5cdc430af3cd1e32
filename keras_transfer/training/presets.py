"""Named compile/fit presets: optimizer, loss, metrics and callbacks for each training phase.

Every field can be overridden per call; `"auto"` values are resolved here and nowhere else.
"""

import dataclasses
import math
import os

import keras
from keras import ops

from keras_transfer.models.heads import task_loss, task_metrics, task_of
from keras_transfer.training.callbacks import AtomicModelCheckpoint, SelectionMonitor, selection_value
from keras_transfer.training.optimizers import block_multipliers, make_optimizer as build_optimizer
from keras_transfer.training.schedules import make_schedule
from keras_transfer.errors import KerasTransferError, unknown_name

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One training phase's settings.

    Args:
        name: the preset's name.
        strategy: the freeze strategy the phase trains with (see `freeze`).
        n: blocks to unfreeze for `strategy="top_blocks"`.
        layer: the first backbone layer to unfreeze for `strategy="from_layer"`.
        optimizer: `"adam"`, `"adamw"`, `"sgd"` (momentum 0.9) or `"rmsprop"`.
        learning_rate: the starting learning rate.
        weight_decay: weight decay for `"adamw"` (and `"sgd"`), or `None`.
        label_smoothing: label smoothing of the cross-entropy loss.
        epochs: epochs of the phase.
        patience: EarlyStopping patience (epochs without improvement; best weights restored).
        reduce_lr_patience: ReduceLROnPlateau patience (halves the rate), or 0 for none.
        monitor: the metric the callbacks watch (falls back to `"loss"` without validation data); an accuracy is
            judged with its loss breaking ties (`callbacks.selection_value`); `"auto"`: `"val_accuracy"` for a
            classifier, `"val_loss"` for regression and multi-label heads.
        solver: `"gradient"` (fit with the optimizer) or `"linear"` (a head-only phase solved to convergence
            by `linear_probe.fit_linear_head`, one "epoch").
        views: for `solver="linear"`: shifted copies of each training image whose features join the probe's
            training set (`linear_probe.shifted_views`; 0: the images alone).
        schedule: `"constant"`, `"cosine"` (linear warmup, then cosine decay) or `"one_cycle"` over the phase's
            steps (needs `steps_per_epoch`); a schedule replaces ReduceLROnPlateau.
        warmup: the share of the phase's steps spent warming up (`"cosine"`).
        layer_decay: discriminative rates: the backbone's top block trains at `learning_rate * layer_decay`, the
            next at `* layer_decay ** 2`, ... (the head at `learning_rate`); `None`: one rate.
        min_steps: EarlyStopping cannot end the phase before this many optimizer steps (nor before warmup ends).
        batch_size: the batch size the phase trains with (`None`: the data's).
        steps_per_epoch: optimizer steps per epoch (known once the data size is; schedules need it).
        schedule_steps: the steps a schedule spans (default: the phase's `epochs * steps_per_epoch`; gradual
            unfreezing's stages share one schedule).
        train_batchnorm: unfrozen BatchNorm layers train (a model trained from scratch needs it).
        batchnorm_momentum: sets the backbone's BatchNorm momentum (Keras applications use 0.99-0.999, made for
            long ImageNet runs: over a few hundred steps their moving statistics barely leave their start).
        keep_optimizer: the phase's optimizer starts from the last phase's state: its step count (so a schedule
            spanning the stages goes on) and the moments of the variables that were already training.
        keep_start: restore the weights the phase started from unless the phase's beat them on validation accuracy
            (the loss breaking ties).
        budget_reason: why the phase is as long as it is (`budget.budget` writes it).
    """

    name: str
    strategy: str
    n: int = None
    layer: str = None
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = None
    label_smoothing: float = 0.0
    epochs: int = 10
    patience: int = 3
    reduce_lr_patience: int = 2
    monitor: str = "val_loss"
    solver: str = "gradient"
    views: int = 0
    schedule: str = "constant"
    warmup: float = 0.0
    layer_decay: float = None
    min_steps: int = 0
    batch_size: int = None
    steps_per_epoch: int = None
    schedule_steps: int = None
    train_batchnorm: bool = False
    batchnorm_momentum: float = None
    keep_optimizer: bool = False
    keep_start: bool = False
    budget_reason: str = None

    @property
    def total_steps(self):
        """The steps the phase's schedule spans, or `None` while the data size is unknown."""
        if self.schedule_steps:
            return self.schedule_steps
        return self.epochs * self.steps_per_epoch if self.steps_per_epoch else None

    @property
    def warmup_steps(self):
        return int(round(self.warmup * self.total_steps)) if self.total_steps and self.schedule == "cosine" else 0


PRESETS = {
    "feature_extraction": Preset("feature_extraction", strategy="head_only", learning_rate=1e-3, epochs=10),
    "fine_tune": Preset("fine_tune", strategy="top_blocks", n=2, learning_rate=1e-5, epochs=10),
    "fine_tune_all": Preset("fine_tune_all", strategy="full", learning_rate=1e-5, epochs=10),
}


def get_preset(preset="feature_extraction", **overrides):
    """A preset by name (or a `Preset`), with fields replaced by non-`None` `overrides`."""
    if not isinstance(preset, Preset):
        if preset not in PRESETS:
            raise unknown_name("preset", preset, PRESETS)
        preset = PRESETS[preset]
    fields = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise KerasTransferError(
            f"Unknown preset field(s) {', '.join(unknown)}. Allowed: {', '.join(sorted(fields))}. "
            f"Received: {', '.join(f'{k}={overrides[k]!r}' for k in unknown)}"
        )
    return dataclasses.replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def make_optimizer(preset, model=None):
    """The preset's optimizer, fresh (no state carried over from an earlier phase): its learning-rate
    schedule over the phase's steps and, with `layer_decay` and a `model`, per-block rates."""
    if preset.optimizer not in OPTIMIZERS:
        raise unknown_name("optimizer", preset.optimizer, OPTIMIZERS, hint=" Or pass a keras.optimizers object.")
    rate = preset.learning_rate
    if preset.schedule != "constant":
        if not preset.total_steps:
            raise KerasTransferError(f"schedule={preset.schedule!r} needs the phase's steps: set steps_per_epoch "
                                     f"(or schedule_steps). Received: steps_per_epoch={preset.steps_per_epoch!r}")
        rate = make_schedule(preset.schedule, preset.learning_rate, preset.total_steps,
                             warmup_steps=preset.warmup_steps)
    multipliers = None
    if preset.layer_decay is not None and model is not None:
        multipliers = block_multipliers(model, preset.layer_decay)
    return build_optimizer(preset.optimizer, rate, multipliers=multipliers, weight_decay=preset.weight_decay)


@keras.saving.register_keras_serializable(package="keras_transfer")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Keras's sparse loss has none)."""

    def __init__(self, label_smoothing=0.1, name="sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def num_outputs(model):
    return int(model.output_shape[-1])


def default_loss(model, label_smoothing=0.0):
    """Binary cross-entropy for a one-unit sigmoid head, sparse categorical otherwise; a regression or multi-label
    head's own loss (`heads.task_loss`)."""
    if task_of(model) != "classification":
        return task_loss(model)
    if num_outputs(model) == 1:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    if label_smoothing:
        return SparseCategoricalCrossentropyWithSmoothing(label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def default_metrics(model):
    """Accuracy, and top-5 accuracy where there are more than 5 classes (a regression or multi-label head:
    `heads.task_metrics`)."""
    if task_of(model) != "classification":
        return task_metrics(model)
    if num_outputs(model) == 1:
        return [keras.metrics.BinaryAccuracy(name="accuracy")]
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_outputs(model) > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    return metrics


def compile_model(model, preset="feature_extraction", *, optimizer=None, loss=None, metrics=None,
                  jit_compile="auto", **overrides):
    """Compiles `model` with a preset's optimizer, loss and metrics.

    Args:
        model: a model made by `build_classifier`.
        preset: a preset name or `Preset`.
        optimizer: an optimizer name (`"adam"`, `"adamw"`, `"sgd"`, `"rmsprop"`, built with the preset's rate)
            or a Keras optimizer object replacing the preset's.
        loss: a Keras loss replacing the preset's.
        metrics: Keras metrics replacing the preset's.
        jit_compile: `"auto"` lets Keras choose (XLA off on a CPU-only TensorFlow, where it is slower).
        **overrides: `Preset` fields, e.g. `learning_rate=1e-4`, `label_smoothing=0.1`.

    Returns:
        The resolved `Preset`.
    """
    if isinstance(optimizer, str):  # a name is the preset field; an object replaces the preset's optimizer
        overrides["optimizer"], optimizer = optimizer, None
    preset = get_preset(preset, **overrides)
    model.compile(
        optimizer=optimizer or make_optimizer(preset, model),
        loss=loss or default_loss(model, preset.label_smoothing),
        metrics=default_metrics(model) if metrics is None else metrics,
        jit_compile=jit_compile,
    )
    return preset


def _monitor(preset, has_validation, model=None):
    monitor = preset.monitor
    if monitor == "auto":
        monitor = "val_accuracy" if model is None or task_of(model) == "classification" else "val_loss"
    monitor = monitor if has_validation or not monitor.startswith("val_") else monitor[4:]
    return monitor, ("max" if "acc" in monitor else "min")


class BudgetedEarlyStopping(SelectionMonitor, keras.callbacks.EarlyStopping):
    """EarlyStopping that watches every epoch (its best weights may come from any of them) but cannot stop the
    run before epoch `min_epoch` (Keras's `start_from_epoch` would also ignore those epochs' weights); an accuracy
    monitor is judged with its loss breaking ties (`callbacks.selection_value`)."""

    def __init__(self, *, min_epoch=0, **kwargs):
        super().__init__(**kwargs)
        self.min_epoch = min_epoch

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.stopped_epoch == epoch and epoch + 1 < self.min_epoch:  # within the step budget: go on
            self.stopped_epoch, self.model.stop_training = 0, False

    def get_monitor_value(self, logs):
        return None if super().get_monitor_value(logs) is None else selection_value(logs, self.monitor)


def phase_callbacks(preset, *, has_validation=True, initial_epoch=0, model=None):
    """Callbacks that start afresh each phase: TerminateOnNaN, EarlyStopping (best weights restored; not
    before the phase's warmup and `min_steps` are done) and, without a schedule, ReduceLROnPlateau. `model`
    resolves `monitor="auto"` by its head's task (`None`: a classifier's)."""
    monitor, mode = _monitor(preset, has_validation, model)
    first = initial_epoch
    if preset.steps_per_epoch:
        first += math.ceil(max(preset.min_steps, preset.warmup_steps) / preset.steps_per_epoch)
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 BudgetedEarlyStopping(monitor=monitor, mode=mode, patience=preset.patience, restore_best_weights=True,
                                       min_epoch=first)]
    if preset.reduce_lr_patience and preset.schedule == "constant":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.5,
                                                           patience=preset.reduce_lr_patience, min_lr=1e-7))
    return callbacks


def run_callbacks(preset, *, has_validation=True, checkpoint_path=None, csv_path=None, model=None):
    """Callbacks that span all phases of a run: the best-model checkpoint (written atomically, never on a
    NaN value) and the CSV log. `model` resolves `monitor="auto"` as in `phase_callbacks`."""
    monitor, mode = _monitor(preset, has_validation, model)
    callbacks = []
    if checkpoint_path:
        os.makedirs(os.path.dirname(os.path.abspath(checkpoint_path)), exist_ok=True)
        callbacks.append(AtomicModelCheckpoint(checkpoint_path, monitor=monitor, mode=mode, save_best_only=True))
    if csv_path:
        callbacks.append(keras.callbacks.CSVLogger(csv_path, append=True))
    return callbacks
