"""Predicts and evaluates a text classifier on strings: the preprocessor runs in a `tf.data` pipeline, the
model on its token ids (either backend); the report is the image report (accuracy, top-k, per-class F1,
confusion matrix, the most confidently wrong texts, named by their ids)."""

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.evaluation import default_class_names, report_from_probabilities, write_report


def predict_texts(model, preprocessor, texts, *, batch_size=32):
    """Class probabilities `(n, units)` of `model` on a list of strings.

    Example:
    >>> predict_texts(model, preprocessor, ["a short text", "another"]).shape
    (2, 3)
    """
    if isinstance(texts, (str, bytes)) or not len(texts):
        raise KerasTransferError(f"texts must be a non-empty list of strings. Received: texts={str(texts)[:80]!r}")
    data = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(batch_size)
    data = data.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate([np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(
        keras.tree.map_structure(np.asarray, x)))) for x in data])  # numpy: JAX takes no TensorFlow tensors


def evaluate_texts(model, preprocessor, texts, labels, *, ids=None, class_names=None, top_k=5, worst=10,
                   batch_size=32, out=None):
    """An `EvaluationReport` of `model` on labelled strings (written to `out` when given).

    Args:
        model, preprocessor: from `build_text_classifier` (or a loaded model and its preprocessor).
        texts, labels: the strings and their int labels.
        ids: a name per text for the most confidently wrong list (default: the texts' first 60 characters).
        class_names, top_k, worst, out: as in `evaluate`.
    """
    if len(texts) != len(labels):
        raise KerasTransferError(f"texts and labels differ in length. Received: len(texts)={len(texts)}, "
                                 f"len(labels)={len(labels)}")
    probabilities = predict_texts(model, preprocessor, texts, batch_size=batch_size)
    names = default_class_names(model, class_names)
    ids = list(ids) if ids is not None else [text[:60] for text in texts]
    report = report_from_probabilities(probabilities, labels, names, top_k=top_k, worst=worst, paths=ids)
    if out is not None:
        write_report(report, out)
    return report
