"""Training phases: one phase freezes, compiles and fits; `run_phases` runs a recipe's phases in order.

Each phase is a visible `freeze` followed by `compile_model`, so a changed model is always recompiled
before it trains again. A phase is a `Preset`: what trains, with which optimizer, schedule and step budget.
"""

import dataclasses
import functools
import logging

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.errors import KerasTransferError
from keras_transfer.history import history_columns
from keras_transfer.models.classifier import get_backbone
from keras_transfer.models.freezing import check_strategy, freeze
from keras_transfer.training.batches import reshuffled_batches
from keras_transfer.training.batchnorm import BatchNormRecalibration, batchnorm_layers, sample_batches
from keras_transfer.training.caching import check_cacheable, train_phase_cached
from keras_transfer.training.callbacks import AtomicModelCheckpoint, selection_value
from keras_transfer.training.linear_probe import train_phase_linear
from keras_transfer.training.presets import compile_model, phase_callbacks, run_callbacks

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FineTuneResult:
    """The phases' `keras.callbacks.History` objects and `FreezeReport`s, in order.

    `phases` names them: `"head"`, then `"fine_tune"` (or `"fine_tune_1"`, ... for gradual unfreezing).
    `recipe` names the recipe that planned them and `plan` says what it chose and why (`run_recipe`).
    """

    phases: list
    histories: list
    freeze_reports: list
    recipe: str = None
    plan: list = dataclasses.field(default_factory=list)

    @property
    def head(self):
        return self.histories[0]

    @property
    def fine(self):
        return self.histories[1:]

    @property
    def history(self):
        """Per-epoch metrics of all phases, concatenated, with a `phase` column."""
        return history_columns([dict(phase=phase, epoch=epoch, **{k: float(v[i]) for k, v in h.history.items()})
                                for phase, h in zip(self.phases, self.histories) for i, epoch in enumerate(h.epoch)])


def carry_optimizer_state(old, new, variables):
    """Builds `new` on `variables` and copies `old`'s state into it: its step count, and the slots (moments,
    momentum) of every variable both optimizers train, matched by their names (`<variable path>_<slot>`).

    Rebuilding is what both backends allow: JAX's stateless update needs an optimizer built on exactly the
    variables that train. Returns the number of optimizer variables carried over.
    """
    old_inner, new_inner = (getattr(o, "inner_optimizer", o) for o in (old, new))  # under a LossScaleOptimizer
    new.build(variables)
    by_name = {v.name: v for v in old_inner.variables}
    carried = 0
    for variable in new_inner.variables:
        source = by_name.get(variable.name)
        if source is not None and tuple(source.shape) == tuple(variable.shape):
            variable.assign(source)
            carried += 1
    return carried


def train_phase(model, train, val=None, *, preset, initial_epoch=0, callbacks=(), class_weight=None,
                verbose="auto", jit_compile="auto", state=None):
    """One phase: freeze as the preset says, recompile, fit. Returns `(History, FreezeReport)`.

    `state` (a `checkpoints.TrainingState`) sees the phase's callbacks, restores a resumed phase's
    optimizer state and writes `last.keras` + `state.json` after every epoch. With `preset.keep_optimizer`
    the new optimizer starts from the last one's state (gradual unfreezing); with `preset.train_batchnorm`
    the BatchNorm statistics are re-estimated before each validation (`batchnorm`); with `preset.keep_start` the
    phase's starting weights come back unless the phase's beat them on validation accuracy, the loss breaking ties.
    On TensorFlow, `(x, y)` arrays train as `batches.reshuffled_batches` (a new order every epoch under a seed).
    """
    if preset.batchnorm_momentum is not None:
        set_batchnorm_momentum(model, preset.batchnorm_momentum)
    previous = getattr(model, "optimizer", None) if preset.keep_optimizer else None
    report = freeze(model, preset.strategy, n=preset.n, layer=preset.layer, train_batchnorm=preset.train_batchnorm,
                    recompile=False)
    compile_model(model, preset, jit_compile=jit_compile)
    if previous is not None:
        carry_optimizer_state(previous, model.optimizer, model.trainable_variables)
    callbacks = phase_callbacks(preset, has_validation=val is not None, initial_epoch=initial_epoch,
                                model=model) + list(callbacks)
    if preset.train_batchnorm and batchnorm_layers(model):  # first: validation and saving see fresh statistics
        callbacks.insert(0, BatchNormRecalibration(sample_batches(train)))
    if state is not None:
        state.watch(model, callbacks)
        callbacks.append(state)  # last: it saves what the other callbacks made of the epoch
    x, y = train if isinstance(train, tuple) else (train, None)
    if y is not None and keras.backend.backend() == "tensorflow":  # Keras's own shuffle repeats under a seed
        x, y = reshuffled_batches(x, y, preset.batch_size), None
    start = _starting_point(model, val, preset)
    shuffle = y is not None  # a dataset shuffles itself; Keras warns when asked to.
    history = model.fit(x, y, validation_data=val, shuffle=shuffle, epochs=initial_epoch + preset.epochs,
                        initial_epoch=initial_epoch, callbacks=callbacks, class_weight=class_weight,
                        verbose=verbose, batch_size=preset.batch_size if y is not None else None)
    if start is not None:
        _keep_better(model, start, val, history, preset, callbacks)
    return history, report


def set_batchnorm_momentum(model, momentum):
    """Sets the momentum of every BatchNorm layer in the backbone (before compiling: it is traced)."""
    for layer in get_backbone(model)._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def _starting_point(model, val, preset):
    """`(weights, (accuracy, -loss))` on validation at the start of a fresh `keep_start` phase, else `None`."""
    if not preset.keep_start or val is None:
        return None
    return model.get_weights(), _validation_score(model, val)


def _validation_score(model, val):
    """What `keep_start` compares, higher is better: validation accuracy (what a classifier is scored on; 0 for a
    head without it), the loss breaking ties. A NaN loss never compares as better."""
    logs = model.evaluate(*(val if isinstance(val, tuple) else (val,)), verbose=0, return_dict=True)
    return float(logs.get("accuracy", 0.0)), -float(logs["loss"])


def _keep_better(model, start, val, history, preset, callbacks):
    """Keeps the phase's weights only if they score better than its start (the linear probe's) on validation
    accuracy, the loss breaking ties; else restores the start and rewrites the run's checkpoint with it.

    Why accuracy first: at 32 texts a class a fine-tuned MiniLM with a lower validation loss than the probe
    scored 0.812 held-out accuracy where the probe scored 0.858 (issue 24); accuracy is what the user is scored on.
    """
    weights, start_score = start
    end_score = _validation_score(model, val)
    if end_score > start_score:
        return
    model.set_weights(weights)
    log.info("Phase '%s': its weights did not beat the ones it started from on validation (accuracy %.4f, loss "
             "%.4f, against %.4f, %.4f): the starting weights are kept.", preset.name, end_score[0], -end_score[1],
             start_score[0], -start_score[1])
    history.kept_start = True
    for callback in callbacks:  # the run's best model is the start's again
        if isinstance(callback, AtomicModelCheckpoint) and not callback.save_weights_only:
            io.save_model(model, callback.filepath)
            callback.best = selection_value({"val_accuracy": start_score[0], "val_loss": -start_score[1]},
                                            callback.monitor)


def run_phases(model, train, val, phases, *, checkpoint_path=None, csv_path=None, callbacks=(), class_weight=None,
               verbose="auto", cache_features=False, cache_dir=None, jit_compile="auto", state=None):
    """Runs `(name, Preset)` phases one after another, each continuing the epoch count.

    With `state` (a `checkpoints.TrainingState`), every epoch ends with `last.keras` + `state.json`, and
    a resumed state skips what was done: the run continues in its phase, at its epoch, with its optimizer.

    The checkpoint (best model over all phases) and the CSV log span the phases; EarlyStopping
    and ReduceLROnPlateau start afresh in each. With `cache_features`, the head-only phases train on
    backbone features computed once (in memory, or streamed to `cache_dir`). A `solver="linear"` phase
    fits the head to convergence (`linear_probe`).
    """
    check_finite_arrays(train, "train")
    check_finite_arrays(val, "val")
    for _, preset in phases:  # a typo in phase 2's arguments fails before phase 1 trains
        check_strategy(model, preset.strategy, n=preset.n, layer=preset.layer)
    if cache_features:
        check_cacheable(model, phases[0][1])
    spanning = run_callbacks(phases[0][1], has_validation=val is not None, checkpoint_path=checkpoint_path,
                             csv_path=csv_path, model=model) + list(callbacks)
    todo, epoch = state.plan(phases) if state else ([(i, n, p, 0) for i, (n, p) in enumerate(phases)], 0)
    if state:
        state.watch_run(spanning)
    result = FineTuneResult([], [], [])
    for index, phase, preset, done in todo:
        if preset.solver == "linear":
            step = train_phase_linear  # any task: its head's own solver
        elif cache_features and preset.strategy == "head_only":
            step = functools.partial(train_phase_cached, cache=cache_dir or "memory")
        else:
            step = train_phase
        if state:
            state.begin_phase(model, index, phase, preset, done)
        step = functools.partial(step, callbacks=spanning, state=state)
        left = dataclasses.replace(preset, epochs=preset.epochs - done,
                                   keep_start=preset.keep_start and not done)  # resumed: its start is gone
        history, report = step(model, train, val, preset=left, initial_epoch=epoch, class_weight=class_weight,
                               verbose=verbose, jit_compile=jit_compile)
        epoch += len(history.epoch)
        result.phases.append(phase)
        result.histories.append(history)
        result.freeze_reports.append(report)
    return result


def check_finite_arrays(data, name, chunk=256):
    """Raises unless every value of `(x, y)` NumPy arrays (x possibly a dict of arrays) is finite: a NaN image
    can give a finite loss through ReLU and max-pooling (NaN compares false), so the NaN-loss guard alone would
    let it train. Datasets are not read here (decoded files cannot hold NaN); the loss guard covers them.
    Checked `chunk` rows at a time, so a large array costs no full-size copy."""
    if not isinstance(data, tuple):
        return
    x, y = data[0], data[1] if len(data) > 1 else None
    inputs = x if isinstance(x, dict) else {None: x}
    parts = [(f"{name} inputs" + ("" if key is None else f" {key!r}"), value) for key, value in inputs.items()]
    parts.append((f"{name} targets", y))
    for what, array in parts:
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.inexact) or not array.ndim:
            continue
        bad_rows, count = [], 0
        for start in range(0, len(array), chunk):
            bad = ~np.isfinite(array[start:start + chunk])
            if bad.any():
                rows = bad.reshape(len(bad), -1).any(axis=1)
                bad_rows.extend((np.flatnonzero(rows) + start).tolist())
                count += int(bad.sum())
        if count:
            raise KerasTransferError(
                f"The {what} hold {count} NaN or infinite values, in {len(bad_rows)} of {len(array)} rows (the "
                f"first at index {bad_rows[0]}); every value must be finite. Check how the arrays were made (a "
                f"missing value read as NaN, a division by zero), or drop those rows. Received: {what} of shape "
                f"{array.shape}, dtype {array.dtype}")


def images_in(data):
    """The number of images in `(x, y)` arrays or a batched `tf.data.Dataset` of known cardinality (`None`
    when it cannot be known without reading it)."""
    if isinstance(data, tuple):
        return len(data[1])
    cardinality = int(data.cardinality()) if hasattr(data, "cardinality") else -1
    batch = batch_of(data)
    return cardinality * batch if cardinality >= 0 and batch else None


def batch_of(data):
    """The batch size of a dataset of `(images, labels)` batches: its first batch's length (`None` for arrays)."""
    if isinstance(data, tuple) or not hasattr(data, "take"):
        return None
    for element in data.take(1):
        return int(element[1].shape[0])
    return None
