"""The learning-rate range test (Leslie Smith, 2015; fastai's `lr_find`): train a few steps at a learning
rate that grows geometrically, watch the loss, pick a rate where it falls fastest.

`find_lr` leaves the model as it found it. It snapshots every model variable (trainable and not: BatchNorm
statistics, the random-seed states of dropout and augmentation), the compiled optimizer's variables and the
metrics' variables as numpy copies; trains with a fresh optimizer of the same class and configuration, whose
float learning rate it sets before each `train_on_batch`; and in a `finally:` puts back the snapshot, the
model's own optimizer and its compiled train function. The model's optimizer is never stepped, so its
learning rate may be a float or a schedule. `train_on_batch` runs one batch per call and reads the optimizer's
variables afresh on every backend (under JAX, `fit` keeps them in its own state for a whole epoch, so a
rate set between batches would be lost), and it reports that batch's own loss, not an epoch's running mean.
"""

import dataclasses
import math
from typing import List, Optional

import keras
import numpy as np

from keras_transfer import io
from keras_transfer.errors import KerasTransferError

INSTALL_HINT = 'pip install "keras-transfer[plots]"'  # as serving/plots.py words it
SKIP_START = 0.1  # the first tenth of the curve (rates too small to move the loss) has no say in the suggestion


@dataclasses.dataclass
class LRFinderResult:
    """The curve of a learning-rate range test.

    Attributes:
        learning_rates: the rate of each step, increasing geometrically.
        losses: each step's training loss (on its own batch).
        smoothed_losses: the exponentially smoothed, bias-corrected losses.
        suggestion: the rate at the steepest descent of the smoothed loss (see `suggest_learning_rate`), or
            None when the curve is too short or never descends.
        min_loss_learning_rate: the rate at the smallest smoothed loss (a tenth of it is another common pick).
        stopped_early: True when the loss diverged (or became NaN/inf) before the last step.
    """

    learning_rates: List[float]
    losses: List[float]
    smoothed_losses: List[float]
    suggestion: Optional[float]
    min_loss_learning_rate: Optional[float]
    stopped_early: bool = False

    def as_dict(self):
        """The result as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def plot(self, path=None):
        """Draws the loss (raw and smoothed) against the learning rate on a log axis, the suggestion marked.

        Args:
            path: a PNG file to write; None returns the figure without writing it.

        Returns:
            `path`, or the matplotlib `Figure` when `path` is None.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional (the plots extra)
            from matplotlib.figure import Figure  # optional (the plots extra)
        except ImportError:
            raise KerasTransferError(f"Plotting needs matplotlib, which is not installed: {INSTALL_HINT}") from None
        figure = Figure(figsize=(6, 4), dpi=100)
        FigureCanvasAgg(figure)  # an Agg canvas of its own: pyplot's backend and state are left alone
        axes = figure.add_subplot()
        axes.plot(self.learning_rates, self.losses, color="0.75", linewidth=1, label="loss")
        axes.plot(self.learning_rates, self.smoothed_losses, color="C0", label="smoothed loss")
        if self.suggestion is not None:
            axes.axvline(self.suggestion, color="C3", linestyle="--", label=f"suggestion {self.suggestion:.2g}")
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("loss")
        axes.legend()
        figure.tight_layout()
        if path is None:
            return figure
        with io.atomic_path(path, ".png") as tmp:
            figure.savefig(tmp, format="png")
        return path


def find_lr(model, train, *, start_learning_rate=1e-7, end_learning_rate=10.0, steps=100, batch_size=None,
            optimizer=None, smoothing=0.98, divergence=4.0, verbose=0):
    """Runs a learning-rate range test on a compiled model and leaves the model exactly as it was.

    Step `i` of `steps` trains one batch at `start * (end / start) ** (i / (steps - 1))`. The test stops
    early when the smoothed loss exceeds `divergence` times its best value, or the loss is NaN/inf (that
    step is not recorded). Afterwards every variable, the model's optimizer (its variables and learning
    rate) and its compiled state are as before: `model.fit` continues as if `find_lr` had not run.

    Args:
        model: a compiled Keras model (e.g. `build_classifier` then `compile_model`).
        train: `(x, y)` arrays, or a `tf.data.Dataset` of `(x, y)` batches (repeated as needed).
        start_learning_rate: the first rate (0 < start < end).
        end_learning_rate: the last rate.
        steps: optimizer steps, one batch each (>= 2).
        batch_size: batch size for arrays (default 32, at most the number of samples); not for datasets.
        optimizer: the optimizer to test (a name or a Keras optimizer, copied, not changed); defaults to a
            copy of the model's own. Only its learning rate is replaced.
        smoothing: the exponential smoothing factor of the loss, in [0, 1).
        divergence: stop when the smoothed loss exceeds this multiple of its best value (> 1).
        verbose: 1 shows a progress bar.

    Returns:
        An `LRFinderResult`.

    Example:
    >>> model = build_classifier("vgg16", 3, weights=None, input_size=32)
    >>> compile_model(model)
    >>> x, y = np.random.uniform(0, 255, (8, 32, 32, 3)), np.arange(8) % 3
    >>> result = find_lr(model, (x, y), steps=10, batch_size=4)
    >>> len(result.learning_rates) <= 10
    True
    """
    _check_args(start_learning_rate, end_learning_rate, steps, smoothing, divergence)
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise KerasTransferError("find_lr needs a compiled model: compile it first (e.g. compile_model(model)). "
                                 f"Received: model={getattr(model, 'name', model)!r} (not compiled)")
    batches = _batches(train, batch_size)
    rates = [start_learning_rate * (end_learning_rate / start_learning_rate) ** (i / (steps - 1))
             for i in range(steps)]
    tester = _fresh_optimizer(model.optimizer if optimizer is None else optimizer, model.optimizer)
    with _restoring(model, tester):
        return _run(model, batches, rates, smoothing, divergence, verbose)


def _check_args(start, end, steps, smoothing, divergence):
    for name, value in (("start_learning_rate", start), ("end_learning_rate", end)):
        if not _is_number(value) or not 0 < value < math.inf:
            raise KerasTransferError(f"{name} must be a positive finite number. Received: {name}={value!r}")
    if start >= end:
        raise KerasTransferError("start_learning_rate must be smaller than end_learning_rate. "
                                 f"Received: start_learning_rate={start!r}, end_learning_rate={end!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise KerasTransferError(f"steps must be an integer >= 2. Received: steps={steps!r}")
    if not _is_number(smoothing) or not 0 <= smoothing < 1:
        raise KerasTransferError(f"smoothing must be in [0, 1). Received: smoothing={smoothing!r}")
    if not _is_number(divergence) or not 1 < divergence:
        raise KerasTransferError(f"divergence must be a number > 1. Received: divergence={divergence!r}")


def _is_number(value):
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and not math.isnan(value)


def _batches(train, batch_size):
    """An endless iterator of `(x, y)` batches from arrays (a seeded shuffle per pass) or a dataset."""
    if isinstance(train, (tuple, list)) and len(train) == 2:
        return _array_batches(*train, batch_size)
    if not hasattr(train, "repeat") or not hasattr(train, "as_numpy_iterator"):
        raise KerasTransferError("train must be (x, y) arrays or a tf.data.Dataset of (x, y) batches. "
                                 f"Received: train={type(train).__name__}")
    if batch_size is not None:
        raise KerasTransferError("A dataset brings its own batches: leave batch_size unset (or batch the "
                                 f"dataset). Received: batch_size={batch_size!r}")
    return train.repeat().as_numpy_iterator()


def _array_batches(x, y, batch_size):
    n = len(x)
    if n == 0 or len(y) != n:
        raise KerasTransferError(f"train needs as many labels as samples, at least one. Received: "
                                 f"len(x)={n}, len(y)={len(y)}")
    if batch_size is None:
        batch_size = min(32, n)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= n:
        raise KerasTransferError(f"batch_size must be an integer from 1 to the number of samples ({n}). "
                                 f"Received: batch_size={batch_size!r}")
    rng = np.random.default_rng(0)
    while True:  # full batches only, so every step has the same shape (no retrace)
        order = rng.permutation(n)
        for begin in range(0, n - batch_size + 1, batch_size):
            index = order[begin:begin + batch_size]
            yield x[index], y[index]


def _fresh_optimizer(optimizer, compiled):
    """A new optimizer of `optimizer`'s class and configuration (a float rate, no gradient accumulation, so
    each step is one batch), wrapped for loss scaling when the model's compiled optimizer is."""
    optimizer = keras.optimizers.get(optimizer)
    scaled = isinstance(compiled, keras.optimizers.LossScaleOptimizer)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        config = optimizer.get_config()
        config.pop("inner_optimizer")
        return type(optimizer)(_fresh_optimizer(optimizer.inner_optimizer, None), **config)
    config = dict(optimizer.get_config(), learning_rate=1.0)
    if config.get("gradient_accumulation_steps"):
        config["gradient_accumulation_steps"] = None
    fresh = type(optimizer).from_config(config)
    return keras.optimizers.LossScaleOptimizer(fresh) if scaled else fresh


class _restoring:
    """Swaps `tester` in as the model's optimizer; on exit, puts back every variable's value, the model's
    optimizer and its compiled train function, whether the block ended normally or raised."""

    def __init__(self, model, tester):
        self.model, self.tester = model, tester

    def __enter__(self):
        model = self.model
        if hasattr(model, "jax_state_sync"):
            model.jax_state_sync()  # JAX: the variables hold the latest values before they are copied
        self.optimizer, self.train_function = model.optimizer, model.train_function
        seen, self.variables = set(), []
        for variable in [*model.variables, *model.optimizer.variables, *model.metrics_variables]:
            if id(variable) not in seen:
                seen.add(id(variable))
                self.variables.append(variable)
        self.values = [np.array(keras.ops.convert_to_numpy(v)) for v in self.variables]  # copies
        model.optimizer, model.train_function = self.tester, None
        self.tester.build(model.trainable_variables)

    def __exit__(self, *error):
        model = self.model
        if hasattr(model, "jax_state_sync"):
            model.jax_state_sync()  # nothing left to be written back over the restored values
        model.optimizer, model.train_function = self.optimizer, self.train_function
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)
        return False


def _run(model, batches, rates, smoothing, divergence, verbose):
    """Trains one batch per rate; returns the curve, stopping when the loss diverges."""
    progress = keras.utils.Progbar(len(rates), verbose=verbose) if verbose else None
    recorded, losses, smoothed = [], [], []
    average, best, stopped = 0.0, math.inf, False
    for i, rate in enumerate(rates):
        batch = next(batches, None)
        if batch is None:
            raise KerasTransferError("train yielded no batches: give it at least one (x, y) batch. "
                                     "Received: train=<an empty dataset>")
        model.optimizer.learning_rate = rate
        loss = float(np.asarray(model.train_on_batch(*batch, return_dict=True)["loss"]))
        if not math.isfinite(loss):
            stopped = True
            break
        average = smoothing * average + (1 - smoothing) * loss
        value = average / (1 - smoothing ** (i + 1))  # bias-corrected: the average starts at 0
        recorded.append(rate)
        losses.append(loss)
        smoothed.append(value)
        best = min(best, value)
        if progress:
            progress.update(i + 1, values=[("loss", loss), ("learning_rate", rate)])
        if value > divergence * best:
            stopped = i < len(rates) - 1
            break
    minimum = recorded[int(np.argmin(smoothed))] if smoothed else None
    return LRFinderResult(recorded, losses, smoothed, suggest_learning_rate(recorded, smoothed), minimum, stopped)


def suggest_learning_rate(learning_rates, smoothed_losses, *, min_points=5):
    """The rate at the steepest descent of the smoothed loss against log(rate), fastai's "steep" rule.

    The rule skips the first tenth of the curve (the smoothing still settling on rates too small to matter),
    looks only up to the smallest smoothed loss (after it the loss rises), takes the slope between
    neighbouring points, and returns the rate at the left end of the most negative slope (the smaller of
    the two rates: a conservative pick). None when fewer than `min_points` points remain or the loss
    never falls.
    """
    start = int(len(smoothed_losses) * SKIP_START)
    losses = np.asarray(smoothed_losses[start:], dtype="float64")
    if len(losses) < min_points:
        return None
    end = int(np.argmin(losses)) + 1
    if end < 2:
        return None
    logs = np.log(np.asarray(learning_rates[start:start + end], dtype="float64"))
    slopes = np.diff(losses[:end]) / np.diff(logs)
    return float(learning_rates[start + int(np.argmin(slopes))])
