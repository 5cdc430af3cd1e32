"""The per-epoch training state that lets an interrupted run resume.

After every epoch `TrainingState` writes `last.keras` (the model with its optimizer state) with the
training state stored inside the same file (`keras_transfer_state.json` in the zip: phase, epochs done,
EarlyStopping / ReduceLROnPlateau counters, learning rate, best value, history rows), then a readable
copy `state.json`, then the history files; every file atomically (`keras_transfer.io`). `last.keras` is the
truth on resume: the model and its state cannot disagree.
"""

import glob
import json
import os
import warnings
import zipfile
from io import BytesIO

import h5py
import keras
import numpy as np

from keras_transfer import io
from keras_transfer.errors import DamagedFileError, KerasTransferError
from keras_transfer.layout import BEST_MODEL, LAST_MODEL, PHASE_BEST_GLOB, RUN_FORMAT, STATE, STATE_IN_ZIP
from keras_transfer.models.classifier import head_model
from keras_transfer.models.saving import load_keras_file
from keras_transfer.training.callbacks import is_finite, first_non_finite, non_finite_error
from keras_transfer.history import write_history


WEIGHTS_IN_ZIP, OPTIMIZER_IN_WEIGHTS = "model.weights.h5", "optimizer/vars"  # Keras's `.keras` layout
# last.keras is replaced whole after every epoch (never half-written), so a damaged one was changed afterwards,
# and no older state is kept to fall back to.
NO_FALLBACK = ("--resume cannot continue from it, and no earlier state is kept: best.keras (the best model so far) "
               "can still be evaluated, predicted with and exported, or start the run again with --overwrite.")


def read_checkpoint_state(path):
    """The training state stored inside a `last.keras` written by `TrainingState`, or `None`."""
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(STATE_IN_ZIP)) if STATE_IN_ZIP in z.namelist() else None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, ValueError) as error:
        raise DamagedFileError(f"The checkpoint {path} is damaged ({error}); {NO_FALLBACK} "
                               f"Received: path={path!r}") from None


def saved_optimizer_variables(path):
    """The optimizer variables stored in a `.keras` file, in order, read from its weights file.

    `keras.models.load_model` builds the optimizer over the rebuilt model's trainable variables and skips the
    saved state (with a warning) when their number differs: so it does for a text model, whose KerasHub encoder is
    rebuilt from its config with every inner layer trainable, whatever the phase had frozen.
    """
    with zipfile.ZipFile(path) as z, h5py.File(BytesIO(z.read(WEIGHTS_IN_ZIP)), "r") as weights:
        group = weights.get(OPTIMIZER_IN_WEIGHTS)
        return [] if group is None else [np.asarray(group[str(i)]) for i in range(len(group))]


def _counters(callback, names):
    if callback is None:
        return None
    return {name: (None if getattr(callback, name, None) is None else float(getattr(callback, name)))
            for name in names}


ES_FIELDS, RLR_FIELDS = ("wait", "best", "best_epoch", "stopped_epoch"), ("wait", "best", "cooldown_counter")


def _save_arrays(path, arrays):
    with io.atomic_path(path, ".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *arrays)


def _set_weights(model, arrays):
    """Sets `model`'s weights, or its head's: EarlyStopping in a cached-features phase saw the head model only."""
    if len(arrays) != len(model.weights):
        model = head_model(model)  # shares the model's head layers
    model.set_weights(arrays)


def _load_arrays(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


class TrainingState(keras.callbacks.Callback):
    """Writes `last.keras` + `state.json` (and `history.csv` / `history.json`) after every epoch, guards
    against NaN losses, and on resume puts the model, optimizer and callback counters back as they were.

    `run_phases` drives it: `plan` says which phases (and how many of their epochs) are left,
    `begin_phase` announces each phase (and loads the resumed weights), `watch` sees the phase's
    EarlyStopping / ReduceLROnPlateau (and loads the resumed optimizer state), `watch_run` the best-model
    checkpoint.

    Args:
        folder: the run folder.
        resume: read the state of an interrupted run from `folder/last.keras`.

    Example:
    >>> state = TrainingState("/tmp/run")
    >>> run_phases(model, (x, y), None, [("head", get_preset("feature_extraction", epochs=1))], state=state)
    """

    def __init__(self, folder, *, resume=False):
        super().__init__()
        self.folder, self.phase_names = folder, None
        self.saved, self.rows = None, []
        if resume:
            self.saved = self._read_saved()
            self.rows = list(self.saved["history"])
        self.full_model = self._es = self._rlr = self._checkpoint = None
        self._pending_optimizer = self._pending_counters = None
        self._best_ref, self._best_file = None, None

    def _read_saved(self):
        path = os.path.join(self.folder, LAST_MODEL)
        if not os.path.exists(path):
            raise KerasTransferError(
                f"Nothing to resume in {self.folder}: it has no {LAST_MODEL} (the run stopped before its first "
                f"epoch ended). Start it again with --overwrite. Received: out={self.folder!r}")
        saved = read_checkpoint_state(path)
        if saved is None or saved.get("run_format") != RUN_FORMAT:
            raise KerasTransferError(
                f"{path} holds no keras_transfer training state of run_format {RUN_FORMAT}; it cannot be resumed. "
                f"Received: run_format={None if saved is None else saved.get('run_format')!r}")
        return saved

    @property
    def finished(self):
        """Whether the resumed run had already run all its phases."""
        s = self.saved
        return bool(s) and s["phase_done"] and s["phase_index"] == len(s["phases"]) - 1

    def plan(self, phases):
        """`([(index, name, preset, epochs_done_in_phase)], overall_epoch)`: what is left to run."""
        self.phase_names = [name for name, _ in phases]
        if self.saved and self.saved["phases"] != self.phase_names:
            raise KerasTransferError(
                f"The run in {self.folder} has phases {self.saved['phases']}, the requested run {self.phase_names}. "
                f"Resume with the run's own settings. Received: phases={self.phase_names!r}")
        if not self.saved:
            return [(i, name, preset, 0) for i, (name, preset) in enumerate(phases)], 0
        s = self.saved
        start = s["phase_index"] + (1 if s["phase_done"] else 0)
        todo = [(i, name, preset, s["phase_epochs_done"] if i == s["phase_index"] else 0)
                for i, (name, preset) in enumerate(phases) if i >= start]
        return todo, s["epochs_done"]

    def begin_phase(self, model, index, name, preset, done):
        """Announces a phase; on the first phase of a resumed run, loads the last epoch's weights."""
        self.full_model, self.index, self.name = model, index, name
        self.phase_epochs, self.done, self.phase_done = preset.epochs, done, False
        self._es = self._rlr = None
        self._best_ref = self._best_file = None
        if self.saved is None:
            return
        s, self.saved = self.saved, None
        try:
            with warnings.catch_warnings():  # a text model's optimizer state: read from the file by `watch`
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                loaded = load_keras_file(os.path.join(self.folder, LAST_MODEL))
        except DamagedFileError as error:
            raise DamagedFileError(f"{str(error).split(' Received:')[0]} {NO_FALLBACK}") from None
        model.set_weights(loaded.get_weights())
        if s["phase_done"] and not s["best_restored"] and s.get("phase_best_file"):  # EarlyStopping's end
            _set_weights(model, _load_arrays(os.path.join(self.folder, s["phase_best_file"])))
        if not s["phase_done"]:
            self._pending_optimizer, self._pending_counters = (loaded, s), s
            self._best_file = s.get("phase_best_file")

    def watch(self, model, phase_callbacks):
        """Sees a compiled phase's callbacks; on a resumed phase, loads the optimizer state and learning rate."""
        self._es = next((c for c in phase_callbacks if isinstance(c, keras.callbacks.EarlyStopping)), None)
        self._rlr = next((c for c in phase_callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau)), None)
        if self._pending_optimizer is None:
            return
        loaded, s = self._pending_optimizer
        self._pending_optimizer = None
        model.optimizer.build(model.trainable_variables)
        source, target = loaded.optimizer.variables, model.optimizer.variables
        if len(source) != len(target):  # the loaded model froze other layers: its optimizer skipped the state
            source = saved_optimizer_variables(os.path.join(self.folder, LAST_MODEL))
        if [tuple(v.shape) for v in source] != [tuple(v.shape) for v in target]:
            raise KerasTransferError(
                f"The optimizer state in {LAST_MODEL} does not fit phase '{self.name}' ({len(source)} variables, "
                f"the phase has {len(target)}); the run folder and the requested run differ. "
                f"Received: phase={self.name!r}")
        for variable, value in zip(target, source):
            variable.assign(value)
        inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # under a LossScaleOptimizer
        if not isinstance(inner._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            model.optimizer.learning_rate = s["learning_rate"]  # ReduceLROnPlateau's; a schedule follows the step

    def watch_run(self, run_callbacks):
        """Sees the callbacks that span the run; restores the best-model checkpoint's best value."""
        self._checkpoint = next((c for c in run_callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)), None)
        if self.saved and self._checkpoint is not None and self.saved.get("checkpoint_best") is not None:
            self._checkpoint.best = self.saved["checkpoint_best"]

    def on_train_begin(self, logs=None):
        self._pending_optimizer = None  # `watch` took it, or the phase (cached features) trains another model
        s, self._pending_counters = self._pending_counters, None
        if s is None:
            return
        for callback, key in ((self._es, "early_stopping"), (self._rlr, "reduce_lr")):
            for field, value in (s.get(key) or {}).items():
                if callback is not None:
                    setattr(callback, field, int(value) if field != "best" and value is not None else value)
        if self._es is not None and self._best_file and self._es.restore_best_weights:
            self._es.best_weights = self._best_ref = _load_arrays(os.path.join(self.folder, self._best_file))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self._last_step = epoch, 0

    def _raise(self, value, step, what):
        kept = [name for name in (BEST_MODEL, LAST_MODEL) if os.path.isfile(os.path.join(self.folder, name))]
        raise non_finite_error(value, phase=self.name, phase_number=self.index + 1, phases=len(self.phase_names),
                               epoch=self.epoch, step=step, what=what, kept=kept)

    def on_train_batch_end(self, batch, logs=None):
        self._last_step = batch
        loss = (logs or {}).get("loss")
        if loss is not None and not is_finite(loss):
            self._raise(loss, batch, "loss")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in ("loss", "val_loss"):
            if key in logs and not is_finite(logs[key]):
                self._raise(logs[key], self._last_step, key)
        bad = first_non_finite(self.model)  # a last update can overflow after a finite loss
        if bad is not None:
            self._raise(bad[1], self._last_step, f"weights ({bad[0]})")
        self.rows.append(dict(phase=self.name, epoch=epoch, **{k: float(v) for k, v in logs.items()}))
        self.done += 1
        self.phase_done = self.done >= self.phase_epochs or bool(self.model.stop_training)
        if self._es is not None and self._es.best_weights is not None and self._es.best_weights is not self._best_ref:
            self._best_ref, self._best_file = self._es.best_weights, f"phase_best-{epoch}.npz"
            _save_arrays(os.path.join(self.folder, self._best_file), self._best_ref)
        self._save(epoch + 1, best_restored=False)

    def on_train_end(self, logs=None):
        if self.phase_done and self._es is not None and self._es.best_weights is not None:
            self._best_file = None  # the model now holds the phase's best weights: their copy can go
            self._save(self.rows[-1]["epoch"] + 1, best_restored=True)

    def _save(self, epochs_done, *, best_restored):
        optimizer = self.model.optimizer
        state = dict(
            run_format=RUN_FORMAT, phases=self.phase_names, phase_index=self.index, phase=self.name,
            phase_epochs_done=self.done, phase_done=self.phase_done, best_restored=best_restored,
            epochs_done=epochs_done, learning_rate=float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
            iterations=int(keras.ops.convert_to_numpy(optimizer.iterations)),
            early_stopping=_counters(self._es, ES_FIELDS), reduce_lr=_counters(self._rlr, RLR_FIELDS),
            checkpoint_best=None if self._checkpoint is None or self._checkpoint.best is None
            else float(self._checkpoint.best),
            phase_best_file=self._best_file, history=self.rows)
        text = json.dumps(state, indent=1)
        io.save_model(self.full_model, os.path.join(self.folder, LAST_MODEL), extra={STATE_IN_ZIP: text})
        io.write_text(os.path.join(self.folder, STATE), text)
        write_history(self.folder, self.rows)
        for path in glob.glob(os.path.join(glob.escape(self.folder), PHASE_BEST_GLOB)):
            if os.path.basename(path) != self._best_file:
                os.unlink(path)
