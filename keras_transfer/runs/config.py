"""Argument checks at the edges: `train_from_folder` and the CLI check everything before any work starts.

Each problem is one `KerasTransferError` line that says what was wrong, what is allowed, and what was
received; nothing is loaded, built or written before these pass.
"""

import os

from keras_transfer.models.augmentation import AUGMENTATIONS
from keras_transfer.errors import KerasTransferError, unknown_name

WEIGHTS = ("imagenet", None)


def _fail(message, **received):
    shown = ", ".join(f"{k}={v!r}" for k, v in received.items())
    return KerasTransferError(f"{message} Received: {shown}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name, value, *, minimum=1, allow_none=False):
    """Raises unless `value` is an int >= `minimum` (or `None` where allowed)."""
    if value is None and allow_none:
        return
    if not _is_int(value) or value < minimum:
        raise _fail(f"{name} must be an integer >= {minimum}.", **{name: value})


def check_fraction(name, value):
    """Raises unless `0 <= value < 1`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise _fail(f"{name} must be a fraction in [0, 1).", **{name: value})


def check_learning_rate(name, value):
    """Raises unless `value` is `None` or a positive finite number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise _fail(f"{name} must be a positive number (e.g. 1e-3).", **{name: value})


def check_data_source(data_dir):
    """Raises unless `data_dir` is an existing folder or a .csv/.json manifest file."""
    if not os.path.exists(data_dir):
        raise _fail(f"Data folder or manifest not found: {data_dir}.", data_dir=data_dir)
    if os.path.isfile(data_dir) and not data_dir.lower().endswith((".csv", ".json")):
        raise _fail("data_dir must be a folder of class subfolders or a .csv/.json manifest.", data_dir=data_dir)


def check_weights(weights):
    """Raises unless `weights` is "imagenet", `None` or an existing file."""
    if weights in WEIGHTS:
        return
    if not isinstance(weights, str) or not os.path.isfile(weights):
        raise _fail(f"Weights file not found: {weights}. weights must be 'imagenet', None ('none' on the command "
                    "line) or the path of an existing weights file.", weights=weights)


def check_train_args(data_dir, *, spec, input_size, strategy, n, layer, epochs, fine_tune_epochs, batch_size,
                     validation_split, test_split, augmentation, dropout, learning_rate, fine_tune_learning_rate,
                     seed, cache_features, weights):
    """Checks `train_from_folder`'s arguments; raises the first problem as a one-line `KerasTransferError`.

    Example:
    >>> check_train_args("photos", spec=get_backbone_spec("vgg16"), input_size=16, ...)
    Traceback (most recent call last):
    KerasTransferError: input_size 16 is below vgg16's minimum of 32. ...
    """
    check_data_source(data_dir)
    check_weights(weights)
    check_positive_int("input_size", input_size)
    if spec.min_size and input_size < spec.min_size:
        raise _fail(f"input_size {input_size} is below {spec.name}'s minimum of {spec.min_size} pixels.",
                    input_size=input_size)
    check_positive_int("epochs", epochs)
    check_positive_int("fine_tune_epochs", fine_tune_epochs, allow_none=True)
    check_positive_int("batch_size", batch_size)
    check_positive_int("n", n)
    check_positive_int("seed", seed, minimum=0)
    check_fraction("validation_split", validation_split)
    check_fraction("test_split", test_split)
    if validation_split + test_split >= 1:
        raise _fail("validation_split + test_split must leave images to train on (sum < 1).",
                    validation_split=validation_split, test_split=test_split)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise _fail("dropout must be in [0, 1).", dropout=dropout)
    check_learning_rate("learning_rate", learning_rate)
    check_learning_rate("fine_tune_learning_rate", fine_tune_learning_rate)
    if augmentation not in AUGMENTATIONS:
        raise unknown_name("augmentation", augmentation, AUGMENTATIONS)
    if strategy == "from_layer" and not layer:
        raise _fail("strategy='from_layer' needs layer, the first backbone layer to unfreeze.", layer=layer)
    if cache_features and augmentation != "none":
        raise _fail("cache_features computes each image's features once, so it cannot see augmented images: "
                    "pass augmentation='none' (--augmentation none) or drop cache_features.",
                    cache_features=cache_features, augmentation=augmentation)
