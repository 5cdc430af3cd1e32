"""A text model's outputs on strings: the preprocessor runs in a `tf.data` pipeline, the model on its token ids
(either backend). What is said of them is the task's, as for images (`predict.describer`, `evaluation.report_of`)."""

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.predict import outputs_on_batch


def predict_texts(model, preprocessor, texts, *, batch_size=32):
    """The raw outputs `(n, units)` of `model` on a list of strings (probabilities or values).

    Example:
    >>> predict_texts(model, preprocessor, ["a short text", "another"]).shape
    (2, 3)
    """
    if isinstance(texts, (str, bytes)) or not len(texts):
        raise KerasTransferError(f"texts must be a non-empty list of strings. Received: texts={str(texts)[:80]!r}")
    data = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(batch_size)
    data = data.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate([outputs_on_batch(model, keras.tree.map_structure(np.asarray, x))  # numpy: JAX takes
                           for x in data])  # no TensorFlow tensors
