"""Learning-rate schedules for fine-tuning: linear warmup then cosine decay, and the one-cycle policy.

Both are `keras.optimizers.schedules.LearningRateSchedule`s computed in `keras.ops` on float32, so they
run inside a compiled train step on every backend and travel inside a saved `.keras` file.
"""

import math

import keras
from keras import ops

from keras_transfer.errors import KerasTransferError, unknown_name

SCHEDULES = ("constant", "cosine", "one_cycle")


def _cosine_anneal(start, end, fraction):
    """`start` at `fraction` 0 to `end` at `fraction` 1 along half a cosine."""
    return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * fraction))


def _check_number(name, value, *, minimum=0.0, strict=True, integer=False):
    """Raises unless `value` is a finite number above `minimum` (or equal, with `strict=False`)."""
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        what = "an integer" if integer else "a finite number"
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise KerasTransferError(f"{name} must be {what} {bound}. Received: {name}={value!r}")


def _check_steps(total_steps, warmup_steps):
    _check_number("total_steps", total_steps, minimum=1, strict=False, integer=True)
    _check_number("warmup_steps", warmup_steps, minimum=0, strict=False, integer=True)
    if warmup_steps > total_steps:
        raise KerasTransferError(
            f"warmup_steps must not exceed total_steps ({total_steps}). Received: warmup_steps={warmup_steps!r}")


@keras.saving.register_keras_serializable(package="keras_transfer")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to a peak, then cosine decay to a final rate at `total_steps`, constant after.

    Step `s < warmup_steps` gets `peak * (s + 1) / warmup_steps` (no step is wasted at rate 0); from
    `warmup_steps` the rate falls along half a cosine from `peak` to `final_learning_rate`, reached at
    `total_steps` and kept after.

    Args:
        peak_learning_rate: the rate at the end of warmup.
        total_steps: optimizer steps until the rate reaches `final_learning_rate`.
        warmup_steps: steps of linear warmup (0 for none).
        final_learning_rate: the rate at and after `total_steps`.

    Example:
    >>> schedule = WarmupCosine(1e-3, 100, warmup_steps=10)
    >>> round(float(schedule(9)), 6), round(float(schedule(100)), 6)
    (0.001, 0.0)
    """

    def __init__(self, peak_learning_rate, total_steps, *, warmup_steps=0, final_learning_rate=0.0):
        _check_number("peak_learning_rate", peak_learning_rate)
        _check_steps(total_steps, warmup_steps)
        _check_number("final_learning_rate", final_learning_rate, strict=False)
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_learning_rate = final_learning_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak, final = float(self.peak_learning_rate), float(self.final_learning_rate)
        decay_steps = self.total_steps - self.warmup_steps
        if decay_steps:
            fraction = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
            decayed = _cosine_anneal(peak, final, fraction)
        else:  # warmup to the end: the final rate from total_steps on
            decayed = ops.full_like(step, final)
        if not self.warmup_steps:
            return decayed
        warm = peak * (step + 1.0) / self.warmup_steps
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "final_learning_rate": self.final_learning_rate}


@keras.saving.register_keras_serializable(package="keras_transfer")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy (fastai's `fit_one_cycle`, PyTorch's `OneCycleLR` with cosine annealing).

    The rate rises along half a cosine from `max_learning_rate / div_factor` to `max_learning_rate`,
    reached at step `pct_start * total_steps`, then falls along half a cosine to
    `max_learning_rate / (div_factor * final_div_factor)`, reached at `total_steps` and kept after.
    (PyTorch peaks one step earlier, at `pct_start * total_steps - 1`, so that its last step is the minimum.)

    Args:
        max_learning_rate: the peak rate.
        total_steps: optimizer steps of the cycle.
        pct_start: the fraction of the steps spent rising, in (0, 1).
        div_factor: the starting rate is `max_learning_rate / div_factor`.
        final_div_factor: the final rate is the starting rate divided by this.

    Example:
    >>> schedule = OneCycle(1e-2, 100, pct_start=0.3)
    >>> round(float(schedule(0)), 6), round(float(schedule(30)), 6)
    (0.0004, 0.01)
    """

    def __init__(self, max_learning_rate, total_steps, *, pct_start=0.25, div_factor=25.0, final_div_factor=1e4):
        _check_number("max_learning_rate", max_learning_rate)
        _check_number("total_steps", total_steps, minimum=1, strict=False, integer=True)
        if not (isinstance(pct_start, (int, float)) and not isinstance(pct_start, bool) and 0 < pct_start < 1):
            raise KerasTransferError(f"pct_start must be a number in (0, 1). Received: pct_start={pct_start!r}")
        _check_number("div_factor", div_factor)
        _check_number("final_div_factor", final_div_factor)
        self.max_learning_rate = max_learning_rate
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = float(self.max_learning_rate)
        start = peak / self.div_factor
        end = start / self.final_div_factor
        peak_step = float(self.pct_start * self.total_steps)
        rising = _cosine_anneal(start, peak, ops.clip(step / peak_step, 0.0, 1.0))
        falling = _cosine_anneal(peak, end, ops.clip((step - peak_step) / (self.total_steps - peak_step), 0.0, 1.0))
        return ops.where(step <= peak_step, rising, falling)

    def get_config(self):
        return {"max_learning_rate": self.max_learning_rate, "total_steps": self.total_steps,
                "pct_start": self.pct_start, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor}


def make_schedule(kind, learning_rate, total_steps, *, warmup_steps=0):
    """A learning rate by name: a float, or a schedule over `total_steps` optimizer steps.

    Args:
        kind: `"constant"` (returns `learning_rate` as a float), `"cosine"` (a `WarmupCosine` peaking at
            `learning_rate`, decaying to 0) or `"one_cycle"` (a `OneCycle` peaking at `learning_rate`; its rise
            lasts `warmup_steps` where given, else a quarter of the steps).
        learning_rate: the constant or peak rate.
        total_steps: optimizer steps of the training (epochs times steps per epoch).
        warmup_steps: steps of warmup, at most `total_steps` (less than it for `"one_cycle"`).

    Example:
    >>> make_schedule("cosine", 1e-3, 100, warmup_steps=10).get_config()["warmup_steps"]
    10
    """
    if kind not in SCHEDULES:
        raise unknown_name("schedule", kind, SCHEDULES)
    _check_number("learning_rate", learning_rate)
    _check_steps(total_steps, warmup_steps)
    if kind == "constant":
        return float(learning_rate)
    if kind == "cosine":
        return WarmupCosine(learning_rate, total_steps, warmup_steps=warmup_steps)
    if warmup_steps == total_steps:
        raise KerasTransferError(
            f"A one-cycle schedule needs warmup_steps below total_steps ({total_steps}) to leave steps to "
            f"anneal. Received: warmup_steps={warmup_steps!r}")
    return OneCycle(learning_rate, total_steps, pct_start=warmup_steps / total_steps if warmup_steps else 0.25)
