"""Export to a TensorFlow SavedModel that serves exactly what was trained, on either backend.

A default `model.export` of a model with augmentation inside serves *augmented* predictions; the
endpoint written here calls the model with `training=False` (augmentation and dropout off).
"""

import json
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.model import get_class_names

SERVING_ENDPOINT = "serve"
CLASS_NAMES_FILE = "class_names.json"


def export_saved_model(model, path, *, check=True, atol=1e-4):
    """Writes `model` as a TensorFlow SavedModel at `path`, with one inference-mode endpoint.

    The endpoint `serve` takes a float32 batch of raw RGB images (0-255) at the model's input size and
    returns class probabilities; `class_names.json` is written beside it. The export is written to a
    temporary folder and renamed into place, so a crash never leaves half an export at `path`.

    Args:
        model: a model made by `build_classifier` (or any single-input Keras model).
        path: the SavedModel folder to create; it must not exist.
        check: reload the export and compare it with the in-memory model on a small batch.
        atol: the largest difference `check` accepts.

    Returns:
        The largest absolute difference found by `check` (or `None`).

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> export_saved_model(model, "/tmp/exported") < 1e-4
    True
    """
    path = os.fspath(path)
    if os.path.exists(path):
        raise KerasTransferError(f"Export path {path} already exists; choose a new one. Received: path={path!r}")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    shape = tuple(model.input_shape)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".export-")
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name=SERVING_ENDPOINT, fn=lambda images: model(images, training=False),
                             input_signature=[keras.InputSpec(shape=(None,) + shape[1:], dtype="float32")])
        archive.write_out(tmp, verbose=False)
        with open(os.path.join(tmp, CLASS_NAMES_FILE), "w") as f:
            json.dump(get_class_names(model), f)
        difference = _check(model, tmp, shape) if check else None
        if difference is not None and difference > atol:
            raise KerasTransferError(
                f"The exported model differs from the in-memory model by {difference:.2e} (> {atol:.0e}); "
                f"nothing was written to {path}."
            )
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return difference


def _check(model, folder, shape):
    import tensorflow as tf

    images = np.random.default_rng(0).uniform(0, 255, (4,) + shape[1:]).astype("float32")
    reloaded = tf.saved_model.load(folder)
    exported = np.asarray(getattr(reloaded, SERVING_ENDPOINT)(tf.constant(images)))
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    return float(np.max(np.abs(exported - expected)))
