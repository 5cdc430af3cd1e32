"""Callbacks that guard a run: the NaN/inf guard's error, a best-model checkpoint written atomically, and the value
they judge the best epoch by."""

import math

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.errors import WorkFailedError


def is_finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def first_non_finite(model):
    """`(variable path, value)` of the first NaN/inf trainable weight of `model`, or `None`."""
    for variable in model.trainable_variables:
        values = keras.ops.convert_to_numpy(variable)
        if not np.isfinite(values).all():
            return variable.path, values[~np.isfinite(values)].flat[0]
    return None


def selection_value(logs, monitor):
    """The value an epoch is judged by under `monitor`: an accuracy with its loss breaking ties, else the logged value.

    `accuracy + 1e-6 / (1 + loss)`: the loss term lies in (0, 1e-6], so it orders epochs of equal accuracy and never
    crosses an accuracy step (a validation set under a million examples). A NaN loss never compares as better. Why
    accuracy first: a from-scratch network's lowest-validation-loss epoch can be an untrained one (MobileNetV2,
    photos at 5 a class: epoch 5 of 75 at validation accuracy 0.15, where epoch 12 scored 0.45; issue 25).
    """
    logs = logs or {}
    value = logs.get(monitor)
    loss = logs.get(("val_" if monitor.startswith("val_") else "") + "loss")
    if value is None or loss is None or not monitor.endswith("accuracy"):
        return value
    return float(value) + 1e-6 / (1.0 + float(loss))


class SelectionMonitor:
    """Mixin for a Keras monitor callback (EarlyStopping, ModelCheckpoint): judges `selection_value` in float64
    (Keras compares in float32, whose steps near 1.0 (1.2e-7) would drop the loss's tie-break)."""

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        value, reference = float(monitor_value) - self.min_delta, float(reference_value)
        return value > reference if self.monitor_op is keras.ops.greater else value < reference


class NonFiniteLossError(WorkFailedError):
    """The loss became NaN or infinite; the run folder keeps the last good checkpoint."""


def non_finite_error(value, *, phase, phase_number, phases, epoch, step, what="loss", kept=None):
    """The error for a non-finite `value`; `kept` names the checkpoint files that hold the last good epoch (`[]`:
    none was written yet; `None`: not known here)."""
    if kept is None:
        saved = "No NaN weights were saved."
    elif kept:
        saved = f"No NaN weights were saved: {' and '.join(kept)} hold the last good epoch."
    else:
        saved = "No epoch had finished, so no checkpoint was written."
    return NonFiniteLossError(
        f"Training stopped: the {what} became {float(value)} in phase '{phase}' ({phase_number} of {phases}), "
        f"epoch {epoch + 1}, step {step + 1}. Likely causes: a learning rate too high (try 10x lower), "
        f"input values that are NaN or infinite, or float16 overflow under precision='mixed_float16' "
        f"(try 'float32' or 'mixed_bfloat16'). {saved} Received: {what}={float(value)}"
    )


class AtomicModelCheckpoint(SelectionMonitor, keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that writes through a temporary file, never saves on a NaN/inf monitored value, and judges
    an accuracy monitor with the loss breaking ties (`selection_value`)."""

    def _save_model(self, epoch, batch, logs):
        current = (logs or {}).get(self.monitor)
        if (current is not None and not is_finite(current)) or first_non_finite(self.model) is not None:
            return  # `TrainingState` stops the run with a message; the last good file stays
        filepath = self._get_file_path(epoch, batch, logs)
        if self._should_save_model(epoch, batch, {**(logs or {}), self.monitor: selection_value(logs, self.monitor)}
                                   if current is not None else logs, filepath):
            if self.save_weights_only:
                self.model.save_weights(filepath, overwrite=True)
            else:
                io.save_model(self.model, filepath)
