"""The one loader of `.keras` files: it registers the library's own classes first, then lets Keras rebuild the model.

A `.keras` file names its custom classes (`keras_transfer>SequencePooling`, `keras_hub>BertBackbone`, the layer-wise
optimizers in `last.keras`); Keras finds them only if the module defining each was imported in this process. A
fresh process that opens a run (`keras-transfer evaluate`, `predict`, `export`, `train --resume`) may not have
imported them, so `load_keras_file` imports every module of `LIBRARY_MODULES`, and KerasHub when the file holds one
of its models, before asking Keras.
"""

import importlib
import os
import re
import zipfile

import keras

from keras_transfer.errors import DamagedFileError, KerasTransferError, text_extra_needed

# Every module that defines a `@keras.saving.register_keras_serializable` class (tests/test_saving.py checks the
# list is complete). Imported by name: some sit above `models/` in the package's layers (the optimizers and
# schedules a `last.keras` holds), and the loader must not import upwards.
LIBRARY_MODULES = (
    "keras_transfer.models.classifier", "keras_transfer.models.heads", "keras_transfer.models.label_weights",
    "keras_transfer.models.pooling", "keras_transfer.models.preprocessing", "keras_transfer.training.optimizers",
    "keras_transfer.training.presets", "keras_transfer.training.regularization", "keras_transfer.training.schedules",
)
KERAS_HUB_MARK = b'"keras_hub>'  # a KerasHub class's registered name in the file's config.json
UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def register_library_objects(needs_keras_hub=False):
    """Imports the modules whose classes a `.keras` file written by keras_transfer may name (idempotent).

    Raises:
        KerasTransferError: `needs_keras_hub` and KerasHub / TensorFlow-Text are not installed.
    """
    for name in LIBRARY_MODULES:
        importlib.import_module(name)
    if needs_keras_hub:
        with text_extra_needed():
            importlib.import_module("keras_hub")  # optional: the `text` extra; registers its backbones


def _names_keras_hub(path):
    """Whether the file's model config names a KerasHub class (False for a file that is not a readable zip)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return KERAS_HUB_MARK in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False  # Keras itself reports the damaged file below


def load_keras_file(path, **kwargs):
    """`keras.saving.load_model(path, **kwargs)` with the library's classes registered (Keras's safe mode kept).

    Raises:
        KerasTransferError: the file names a class that is not registered in this process (a user's custom layer).
        DamagedFileError: the file is missing, truncated or not a Keras model, or Keras's safe mode refused it
            (it holds code, e.g. a Lambda layer).

    Example:
    >>> model = load_keras_file("runs/texts/best.keras")  # doctest: +SKIP
    """
    path = os.fspath(path)
    register_library_objects(needs_keras_hub=_names_keras_hub(path))
    try:
        return keras.saving.load_model(path, **kwargs)
    except Exception as error:  # zipfile, h5py, JSON and Keras errors all mean: this file cannot be used
        raise _load_error(path, error) from None


def _load_error(path, error):
    text = " ".join(str(error).split())
    unknown = UNKNOWN_CLASS.search(text)
    if unknown:
        return KerasTransferError(
            f"{path} names an unknown layer class '{unknown.group(1)}' (not registered with Keras in this process; "
            f"keras_transfer registers its own). Import the module that defines it (decorated with "
            f"@keras.saving.register_keras_serializable) before loading, or load it yourself with "
            f"keras.saving.load_model(path, custom_objects=...). Received: path={path!r}")
    inner = text.rsplit("Exception encountered:", 1)  # Keras puts the whole config before the cause
    reason = (inner[-1].strip() if len(inner) == 2 else text)[:300] or type(error).__name__
    if "safe_mode" in reason:
        return DamagedFileError(
            f"Keras's safe mode refused {path}: it holds code (e.g. a Lambda layer) that would run when loaded. "
            f"Load it yourself only if you trust where it came from: keras.saving.load_model(path, "
            f"safe_mode=False). Received: path={path!r}")
    return DamagedFileError(
        f"{path} cannot be loaded as a Keras model ({type(error).__name__}: {reason}); it is damaged "
        f"(truncated or overwritten) or not a .keras file. Received: path={path!r}")
