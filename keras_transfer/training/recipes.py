"""The two-phase recipe: train the head on a frozen backbone, then unfreeze and fine-tune slower.

Each phase is a visible `freeze` followed by `compile_model`, so a changed model is always
recompiled before it trains again.
"""

import dataclasses
import functools

from keras_transfer.training.caching import check_cacheable, train_phase_cached
from keras_transfer.errors import unknown_name
from keras_transfer.history import history_columns
from keras_transfer.models.freezing import check_strategy, freeze
from keras_transfer.training.presets import compile_model, get_preset, phase_callbacks, run_callbacks

UNFREEZE = ("top_blocks", "from_layer", "full", "gradual")


@dataclasses.dataclass
class FineTuneResult:
    """The phases' `keras.callbacks.History` objects and `FreezeReport`s, in order.

    `phases` names them: `"head"`, then `"fine_tune"` (or `"fine_tune_1"`, ... for gradual unfreezing).
    """

    phases: list
    histories: list
    freeze_reports: list

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


def train_phase(model, train, val=None, *, preset, initial_epoch=0, callbacks=(), class_weight=None,
                verbose="auto", jit_compile="auto", state=None):
    """One phase: freeze as the preset says, recompile, fit. Returns `(History, FreezeReport)`.

    `state` (a `checkpoints.TrainingState`) sees the phase's callbacks, restores a resumed phase's
    optimizer state and writes `last.keras` + `state.json` after every epoch.
    """
    report = freeze(model, preset.strategy, n=preset.n, layer=preset.layer, recompile=False)
    compile_model(model, preset, jit_compile=jit_compile)
    callbacks = phase_callbacks(preset, has_validation=val is not None) + list(callbacks)
    if state is not None:
        state.watch(model, callbacks)
        callbacks.append(state)  # last: it saves what the other callbacks made of the epoch
    x, y = train if isinstance(train, tuple) else (train, None)
    shuffle = y is not None  # a dataset shuffles itself; Keras warns when asked to.
    history = model.fit(x, y, validation_data=val, shuffle=shuffle, epochs=initial_epoch + preset.epochs,
                        initial_epoch=initial_epoch, callbacks=callbacks, class_weight=class_weight,
                        verbose=verbose)
    return history, report


def fine_tune(model, train, val=None, *, head_epochs=None, fine_tune_epochs=None, unfreeze="top_blocks",
              n=2, layer=None, head_preset="feature_extraction", fine_tune_preset="fine_tune",
              head_learning_rate=None, fine_tune_learning_rate=None, checkpoint_path=None, csv_path=None,
              callbacks=(), class_weight=None, verbose="auto", cache_features=False, cache_dir=None,
              jit_compile="auto", state=None, label_smoothing=None):
    """Trains the head first, then unfreezes the backbone's top and continues at a lower rate.

    1. freeze the backbone, compile with `head_preset`, fit `head_epochs`;
    2. unfreeze (`"top_blocks"`: the top `n` blocks; `"from_layer"`: from `layer` on; `"full"`;
       `"gradual"`: one more top block per stage up to `n`, `fine_tune_epochs` each), recompile
       with `fine_tune_preset`, fit on from where phase 1 stopped.

    EarlyStopping restores each phase's best weights; BatchNorm layers stay frozen.

    Args:
        model: a model made by `build_classifier`.
        train, val: `tf.data.Dataset`s of (images, labels), or `(images, labels)` tuples of arrays.
        head_epochs, fine_tune_epochs: epochs of each phase (default: the presets').
        head_learning_rate, fine_tune_learning_rate: override the presets' rates.
        label_smoothing: overrides both presets' label smoothing.
        checkpoint_path: optional `.keras` path for the best model over all phases.
        csv_path: optional CSV log over all phases.
        callbacks: extra Keras callbacks for every phase.
        class_weight: as in `model.fit`.
        cache_features: train the head phase on backbone features computed once (needs a model built
            with `augmentation="none"`; see `caching.train_phase_cached`).
        cache_dir: `None` keeps cached features in memory; a folder streams them to disk.
        jit_compile: `"auto"`, `True` or `False`, passed to `compile_model`.
        state: a `checkpoints.TrainingState`: saves `last.keras` + `state.json` every epoch, and resumes.

    Returns:
        A `FineTuneResult`.

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> x, y = np.random.rand(8, 32, 32, 3) * 255, np.arange(8) % 3
    >>> result = fine_tune(model, (x, y), head_epochs=1, fine_tune_epochs=1, verbose=0)
    >>> result.phases
    ['head', 'fine_tune']
    """
    if unfreeze not in UNFREEZE:
        raise unknown_name("unfreeze", unfreeze, UNFREEZE)
    head = get_preset(head_preset, epochs=head_epochs, learning_rate=head_learning_rate,
                      label_smoothing=label_smoothing)
    fine = get_preset(fine_tune_preset, epochs=fine_tune_epochs, learning_rate=fine_tune_learning_rate,
                      label_smoothing=label_smoothing)
    if unfreeze == "gradual":
        stages = [(f"fine_tune_{k}", dataclasses.replace(fine, strategy="top_blocks", n=k)) for k in range(1, n + 1)]
    else:
        stages = [("fine_tune", dataclasses.replace(fine, strategy=unfreeze, n=n, layer=layer))]
    return run_phases(model, train, val, [("head", head)] + stages, checkpoint_path=checkpoint_path,
                      csv_path=csv_path, callbacks=callbacks, class_weight=class_weight, verbose=verbose,
                      cache_features=cache_features, cache_dir=cache_dir, jit_compile=jit_compile, state=state)


def run_phases(model, train, val, phases, *, checkpoint_path=None, csv_path=None, callbacks=(), class_weight=None,
               verbose="auto", cache_features=False, cache_dir=None, jit_compile="auto", state=None):
    """Runs `(name, Preset)` phases one after another, each continuing the epoch count.

    With `state` (a `checkpoints.TrainingState`), every epoch ends with `last.keras` + `state.json`, and
    a resumed state skips what was done: the run continues in its phase, at its epoch, with its optimizer.

    The checkpoint (best model over all phases) and the CSV log span the phases; EarlyStopping
    and ReduceLROnPlateau start afresh in each. With `cache_features`, the head-only phases train on
    backbone features computed once (in memory, or streamed to `cache_dir`).
    """
    for _, preset in phases:  # a typo in phase 2's arguments fails before phase 1 trains
        check_strategy(model, preset.strategy, n=preset.n, layer=preset.layer)
    if cache_features:
        check_cacheable(model, phases[0][1])
    spanning = run_callbacks(phases[0][1], has_validation=val is not None, checkpoint_path=checkpoint_path,
                             csv_path=csv_path) + list(callbacks)
    todo, epoch = state.plan(phases) if state else ([(i, n, p, 0) for i, (n, p) in enumerate(phases)], 0)
    if state:
        state.watch_run(spanning)
    result = FineTuneResult([], [], [])
    for index, phase, preset, done in todo:
        cached = cache_features and preset.strategy == "head_only"
        step = functools.partial(train_phase_cached, cache=cache_dir or "memory") if cached else train_phase
        if state:
            state.begin_phase(model, index, phase, preset, done)
        step = functools.partial(step, callbacks=spanning, state=state)
        left = dataclasses.replace(preset, epochs=preset.epochs - done)
        history, report = step(model, train, val, preset=left, initial_epoch=epoch, class_weight=class_weight,
                               verbose=verbose, jit_compile=jit_compile)
        epoch += len(history.epoch)
        result.phases.append(phase)
        result.histories.append(history)
        result.freeze_reports.append(report)
    return result
