"""Callbacks that guard a run: the NaN/inf guard's error and a best-model checkpoint written atomically."""

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


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that writes through a temporary file and never saves on a NaN/inf monitored value."""

    def _save_model(self, epoch, batch, logs):
        current = (logs or {}).get(self.monitor)
        if (current is not None and not is_finite(current)) or first_non_finite(self.model) is not None:
            return  # `TrainingState` stops the run with a message; the last good file stays
        filepath = self._get_file_path(epoch, batch, logs)
        if self._should_save_model(epoch, batch, logs, filepath):
            if self.save_weights_only:
                self.model.save_weights(filepath, overwrite=True)
            else:
                io.save_model(self.model, filepath)
