"""TFLite conversion of the inference-mode SavedModel, on either backend.

The model is first written as a SavedModel with one `serve` endpoint (`training=False`; under JAX a
static jax2tf function with the weights baked in, which the converter accepts), then
`tf.lite.TFLiteConverter.from_saved_model` converts that signature. `quantize="dynamic"` applies
dynamic-range quantisation (int8 weights, float activations). The `.tflite` file has one signature,
`serve`: input `images` float32 (batch, size, size, 3) raw RGB 0-255, output `output_0` probabilities.

Example (reading a `.tflite` written by `export`):
>>> import tensorflow as tf
>>> runner = tf.lite.Interpreter(model_path="model.tflite").get_signature_runner("serve")
>>> probabilities = runner(images=images)["output_0"]
"""

import os
import shutil
import tempfile
import warnings

import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.export_archive import SERVING_ENDPOINT, build_archive

QUANTIZE = (None, "dynamic")


def check_quantize(quantize):
    if quantize not in QUANTIZE:
        raise KerasTransferError(
            f"Unknown quantize {quantize!r}. Allowed: None (float32), 'dynamic' (dynamic-range, int8 weights). "
            f"Received: quantize={quantize!r}"
        )


def convert_to_tflite(model, *, quantize=None):
    """Returns the bytes of a `.tflite` flatbuffer for `model`'s inference-mode `serve` endpoint.

    Args:
        model: a single-input image model (e.g. made by `build_classifier`).
        quantize: `None` (float32) or `"dynamic"` (dynamic-range quantisation).

    Returns:
        The flatbuffer as `bytes`.

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> len(convert_to_tflite(model, quantize="dynamic")) > 0
    True
    """
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    check_quantize(quantize)
    folder = tempfile.mkdtemp(prefix="keras-transfer-tflite-")
    try:
        build_archive(model, uint8=False, resize=False, static=True).write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[SERVING_ENDPOINT])
        if quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_tflite(path, images):
    """Runs the `serve` signature of the `.tflite` file at `path` on a float32 batch; returns probabilities."""
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to ai_edge_litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=os.fspath(path))
    runner = interpreter.get_signature_runner(SERVING_ENDPOINT)
    return np.asarray(runner(images=np.asarray(images, dtype="float32"))["output_0"])
