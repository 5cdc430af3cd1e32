"""Exports a text classifier as a SavedModel whose endpoint takes raw strings (the tokenizer inside), on
either backend, checked against the in-memory model before the folder is renamed into place.

The Keras model takes token ids (see `models.text_classifier`); the archive tracks it and the KerasHub
preprocessor (its vocabulary lookup tables). Under JAX the token-id endpoint goes through jax2tf like the
image exports; the string endpoint is a `tf.function` that runs the preprocessor (TensorFlow-Text ops) and then
calls that endpoint, so the same code serves both backends.

Endpoints, each returning class probabilities `(batch, classes)` float32:
    serve / serving_default: a string tensor `(batch,)` of raw texts.
    serve_token_ids: the preprocessor's int32 outputs, `(batch, sequence_length)` each.
    class_names: no input; the class names (when known).

Loading it needs the TensorFlow-Text ops registered: `import tensorflow_text` before `tf.saved_model.load`
(`load_text_saved_model` does it), in any TensorFlow process, Keras or KerasHub not needed.
"""

import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text

from keras_transfer import io
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import get_class_names
from keras_transfer.serving.export_archive import CLASS_NAMES_ENDPOINT, JAX_PLATFORMS, SERVING_ENDPOINT, constant_endpoint

TOKEN_ENDPOINT = "serve_token_ids"
TEXT_OPS = tensorflow_text.__name__  # imported for its side effect: it registers the tokenizer's ops
CHECK_TEXTS = ("A short text to check the export.", "Another, longer text: the export must give the same "
               "probabilities as the model in memory, on raw strings.", "x")


def build_text_archive(model, preprocessor, *, class_names=None):
    """An `ExportArchive` with the raw-string, token-id and class-name endpoints listed in the module docstring."""
    options = {}
    if keras.backend.backend() == "jax":
        options = {"is_static": False, "jax2tf_kwargs": {"native_serialization": True,
                                                          "native_serialization_platforms": JAX_PLATFORMS}}
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    signature = {name: keras.InputSpec(shape=(None,) + tuple(spec.shape[1:]), dtype="int32")
                 for name, spec in _input_specs(model).items()}

    def serve_token_ids(inputs):
        return model(inputs, training=False)

    token_fn = archive.add_endpoint(TOKEN_ENDPOINT, serve_token_ids, input_signature=[signature], **options)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="texts")])
    def serve(texts):
        return token_fn({key: tf.cast(value, tf.int32) for key, value in preprocessor(texts).items()})

    archive.add_endpoint(SERVING_ENDPOINT, serve)
    if class_names:
        archive.add_endpoint(CLASS_NAMES_ENDPOINT, constant_endpoint(class_names))
    return archive


def _input_specs(model):
    return {tensor.name.split(":")[0]: tensor for tensor in model.inputs} if not isinstance(model.input, dict) \
        else dict(model.input)


def export_text_saved_model(model, preprocessor, path, *, texts=CHECK_TEXTS, atol=1e-4):
    """Writes the raw-string SavedModel at `path` (a new folder) after checking it on `texts`.

    Args:
        model: a model made by `build_text_classifier`.
        preprocessor: its preprocessor.
        path: the SavedModel folder to create; it must not exist.
        texts: the texts the export is compared on.
        atol: the largest difference accepted.

    Returns:
        The largest absolute difference to the in-memory model on `texts`.

    Example:
    >>> model, pre = build_text_classifier(encoder, 3, preprocessor=pre)
    >>> export_text_saved_model(model, pre, "/tmp/text_export") < 1e-4
    True
    """
    path = os.fspath(path)
    if os.path.exists(path):
        raise KerasTransferError(f"{path} exists; the export writes a new folder. Received: path={path!r}")
    class_names = get_class_names(model)
    expected = np.asarray(keras.ops.convert_to_numpy(model(preprocessor(tf.constant(list(texts))), training=False)))
    with io.atomic_folder(path) as tmp:
        build_text_archive(model, preprocessor, class_names=class_names).write_out(tmp, verbose=False)
        served = load_text_saved_model(tmp)
        got = np.asarray(getattr(served, SERVING_ENDPOINT)(tf.constant(list(texts))))
        difference = float(np.max(np.abs(got - expected)))
        if not difference <= atol:
            raise KerasTransferError(f"The exported text SavedModel differs from the in-memory model by "
                                     f"{difference:.2e} (> {atol:.0e}) on {len(texts)} texts; nothing was written "
                                     f"to {path}. Received: atol={atol!r}")
    return difference


def load_text_saved_model(path):
    """`tf.saved_model.load(path)` with the TensorFlow-Text ops registered; `.serve(tf.constant([texts]))`."""
    return tf.saved_model.load(os.fspath(path))
