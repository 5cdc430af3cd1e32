"""Step budgets: a phase is sized in optimizer steps, not epochs.

With little data an epoch is a few steps (100 images at batch 32: 4), so "10 epochs" and "patience 3" can end
a phase after a handful of updates. A budget caps the batch for tiny data sets (at least 4 steps an epoch),
derives the epochs from a minimum number of steps, and tells EarlyStopping (through the preset's `min_steps`)
not to stop before them.
"""

import dataclasses
import math

from keras_transfer.data.splits import DEFAULT_BATCH, batch_for  # the batch rule lives with the data (texts use it too)

MIN_HEAD_STEPS = 100
MIN_FINE_TUNE_STEPS = 200
MIN_SCRATCH_STEPS = 300
LARGE_DATA = 20_000  # training images past which `auto` trains the head by gradient steps
FEW_SHOT = 3  # training images a class under which `auto` fits the head alone (images; benchmarks/recipes.py)
FEW_SHOT_WHY = ("measured at 3-10 a class on MobileNetV2's ImageNet features, both backends: +0.013 to +0.100 "
                "held-out accuracy on digits, -0.014 to +0.020 on photos and textures")
TEXT_FEW_SHOT = 20  # the same for texts: fine-tuning an encoder under 20 a class was not measured
PROBE_VIEWS = 8  # shifted copies of each training image whose features the linear probe also fits
PROBE_VIEWS_UP_TO = 2_000  # training images up to which it does (9x the feature extraction; cheap below that)
PROBE_VIEWS_WHY = "measured at 3-10 images a class: +0.02 held-out accuracy on average over the images alone"


@dataclasses.dataclass(frozen=True)
class DataSize:
    """What a recipe plans from: the training images, the classes and, for a dataset, its batch size."""

    images: int
    classes: int
    batch: int = None


def budget(preset, size, *, epochs=None, min_steps=0, batch_size=None):
    """`preset` with its batch size, steps per epoch, epochs and `min_steps` set for `size.images`.

    `epochs` given: exactly that many (the minimum still holds EarlyStopping back, within them); else the
    preset's epochs, raised until the phase makes at least `min_steps` steps. The preset gains a
    `budget_reason` saying which.

    Example:
    >>> preset = budget(get_preset("fine_tune"), DataSize(images=30, classes=3), min_steps=200)
    >>> preset.batch_size, preset.steps_per_epoch, preset.epochs
    (7, 5, 40)
    """
    batch = size.batch or batch_for(size.images, batch_size)  # a dataset is batched already
    steps = math.ceil(size.images / batch)
    if epochs is not None:
        chosen, reason = epochs, f"{epochs} epochs as given"
    elif preset.epochs * steps >= min_steps:
        chosen, reason = preset.epochs, f"{preset.epochs} epochs reach the minimum of {min_steps} steps"
    else:
        chosen = math.ceil(min_steps / steps)
        reason = f"raised from {preset.epochs} epochs to reach the minimum of {min_steps} steps"
    if batch_size is None and size.batch is None and batch < DEFAULT_BATCH:
        reason += f"; batch {batch}: a quarter of {size.images} images"
    return dataclasses.replace(preset, batch_size=batch, steps_per_epoch=steps, epochs=chosen, min_steps=min_steps,
                               budget_reason=reason)
