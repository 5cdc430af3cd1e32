"""Builds the inference-mode SavedModel (Keras's `ExportArchive`) that `export` writes, on either backend.

Every endpoint calls the model with `training=False` (augmentation and dropout off): a default
`model.export` of a model with augmentation inside would serve augmented, changing predictions.
Under JAX the model endpoints go through jax2tf, taking the weights as SavedModel variables (stored
once); `static=True` (used for TFLite) bakes them into each endpoint instead, which the TFLite converter
needs (it cannot hold the uint32 seed-generator state the default endpoints write back) but which makes
`saved_model.pb` hold one copy of the weights per endpoint. JAX endpoints are lowered for both CPU and
CUDA (`JAX_PLATFORMS`), so a model exported on a GPU also serves on a CPU-only TensorFlow and the other
way round (Keras would otherwise lower for the exporting device only). The `class_names` endpoint is a
plain `tf.function` returning a string constant, added through `ExportArchive`'s `tf.function` path on both backends.

Endpoints (signature names), all returning class probabilities `(batch, classes)` float32 as `output_0`:
    serve / serving_default: float32 `images` (batch, size, size, 3), raw RGB 0-255.
    serve_uint8: uint8 `images` (batch, size, size, 3).
    serve_any_size: float32 `images` (batch, height, width, 3) of any height and width, resized
        inside (bilinear, `keras.ops.image.resize`, no antialiasing) to the model's input size.
    class_names: no input; a string tensor `(classes,)` of the class names (only when known); a regression
        model's target names, a multi-label model's label names.
    thresholds: no input; a float32 tensor `(labels,)` of a multi-label model's per-label thresholds (only for
        those; a regression model's `serve` returns values in the user's units, its standardisation is in the graph).
"""

import keras
import numpy as np

from keras_transfer.models.classifier import input_size
from keras_transfer.models.heads import get_thresholds

SERVING_ENDPOINT = "serve"
UINT8_ENDPOINT = "serve_uint8"
RESIZE_ENDPOINT = "serve_any_size"
CLASS_NAMES_ENDPOINT = "class_names"
THRESHOLDS_ENDPOINT = "thresholds"
JAX_PLATFORMS = ("cpu", "cuda")


def build_archive(model, *, class_names=None, uint8=True, resize=True, static=False):
    """An `ExportArchive` tracking `model` with the inference-mode endpoints listed in the module docstring.

    Args:
        model: a single-input image model taking raw RGB 0-255 (e.g. made by `build_classifier`).
        class_names: names to serve from a `class_names` endpoint (`None`: no such endpoint).
        uint8: add `serve_uint8`.
        resize: add `serve_any_size`.
        static: under JAX, bake the weights into the endpoints (`is_static=True`); ignored under TensorFlow.

    Returns:
        The `keras.export.ExportArchive`, ready for `write_out`.

    Example:
    >>> archive = build_archive(build_classifier("mobilenetv2", 3, weights=None, input_size=32))
    >>> archive.write_out("/tmp/exported", verbose=False)
    """
    size = input_size(model)
    options = {}
    if keras.backend.backend() == "jax":
        options = {"is_static": static, "jax2tf_kwargs": {"native_serialization": True,
                                                          "native_serialization_platforms": JAX_PLATFORMS}}
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        return model(images, training=False)

    def serve_uint8(images):
        return model(keras.ops.cast(images, "float32"), training=False)

    def serve_any_size(images):
        resized = keras.ops.image.resize(images, size, interpolation="bilinear", antialias=False)
        return model(resized, training=False)

    archive.add_endpoint(SERVING_ENDPOINT, serve, input_signature=[_spec(model, "float32")], **options)
    if uint8:
        archive.add_endpoint(UINT8_ENDPOINT, serve_uint8, input_signature=[_spec(model, "uint8")], **options)
    if resize:
        archive.add_endpoint(RESIZE_ENDPOINT, serve_any_size,
                             input_signature=[keras.InputSpec(shape=(None, None, None, 3), dtype="float32")],
                             **options)
    if class_names:
        archive.add_endpoint(CLASS_NAMES_ENDPOINT, constant_endpoint(class_names))
    if get_thresholds(model) is not None:
        archive.add_endpoint(THRESHOLDS_ENDPOINT, constant_endpoint(get_thresholds(model), "thresholds", float))
    return archive


def _spec(model, dtype):
    return keras.InputSpec(shape=(None,) + tuple(model.input_shape[1:]), dtype=dtype)


def constant_endpoint(values, name="class_names", kind=str):
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    constant = [kind(v) for v in values]

    def values_fn():
        return tf.constant(constant, dtype=tf.float32 if kind is float else tf.string)

    values_fn.__name__ = name
    function = tf.function(values_fn, input_signature=[])
    function()  # traced once: ExportArchive takes a called tf.function without an input_signature
    return function


def served_outputs(folder, images):
    """Loads the SavedModel at `folder`; returns ({endpoint: its probabilities on `images`}, served class names).

    `images` must hold whole numbers in 0-255 (so the uint8 endpoint sees the same pixels); the class
    names are `None` when the export has no `class_names` endpoint.
    """
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    served = tf.saved_model.load(folder)
    calls = {SERVING_ENDPOINT: images, UINT8_ENDPOINT: images.astype("uint8"), RESIZE_ENDPOINT: images}
    outputs = {name: np.asarray(getattr(served, name)(tf.constant(batch)))
               for name, batch in calls.items() if hasattr(served, name)}
    names = None
    if hasattr(served, CLASS_NAMES_ENDPOINT):
        names = [name.decode() for name in getattr(served, CLASS_NAMES_ENDPOINT)().numpy()]
    return outputs, names
