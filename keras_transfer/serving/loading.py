"""One model loader for prediction, evaluation and export: a Keras model, a run folder or a `.keras` file."""

import os

import keras

from keras_transfer import io
from keras_transfer.errors import KerasTransferError
from keras_transfer.layout import BEST_MODEL, CLASS_NAMES
from keras_transfer.models.classifier import get_class_names
from keras_transfer.models.heads import task_of
from keras_transfer.models.saving import load_keras_file


def load_model(source):
    """`(model, class_names)` from a Keras model, a run folder (its `best.keras`) or a `.keras` file.

    The class names come from the model's head, else from the run folder's `class_names.json`, else `None`.
    Loading keeps Keras's safe mode (no arbitrary code from a file runs).

    Example:
    >>> model, names = load_model("runs/photos")  # doctest: +SKIP
    """
    if isinstance(source, keras.Model):
        return source, get_class_names(source)
    folder, file = None, os.fspath(source)
    if os.path.isdir(file):
        folder, file = file, os.path.join(file, BEST_MODEL)
    if not (file.endswith(".keras") and os.path.isfile(file)):
        raise KerasTransferError(
            f"No model at {file}: pass a Keras model, a run folder holding {BEST_MODEL} (written by "
            f"`keras-transfer train`) or a .keras file. Received: model_or_run_dir={os.fspath(source)!r}")
    model = load_keras_file(file)
    names = get_class_names(model)
    if names is None and folder and os.path.isfile(os.path.join(folder, CLASS_NAMES)):
        names = io.read_json(os.path.join(folder, CLASS_NAMES))
    return model, names


def default_class_names(model, class_names=None):
    """`class_names`, else the model's own, else `"0"`, `"1"`, ... (one per class, target or label the model
    outputs; one sigmoid unit of a classifier: two classes)."""
    units = model.output_shape[-1]
    num_classes = 2 if units == 1 and task_of(model) == "classification" else units
    names = list(class_names) if class_names is not None else get_class_names(model)
    names = [str(i) for i in range(num_classes)] if names is None else list(names)
    if len(names) != num_classes:
        raise KerasTransferError(f"The model predicts {num_classes} classes but {len(names)} class names were "
                                 f"given. Received: class_names={names!r}")
    return names
