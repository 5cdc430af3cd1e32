"""Numpy `(images, labels)` batches from either kind of training data the library takes: `(x, y)` arrays or a
`tf.data.Dataset` of `(x, y)` batches (feature caching and the linear probe read their data this way)."""

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError


def numpy_batches(data, batch_size, *, needs="This"):
    """Yields numpy `(inputs, labels)` batches (inputs: an array, or a dict of arrays) of `data` once, in order:
    arrays cut into `batch_size` pieces, a dataset's own batches as they come. `needs` names the caller in the error
    for a malformed dataset."""
    def numpy(tree):  # an array, or a dict of them (a text model's token ids and mask)
        return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), tree)

    if isinstance(data, tuple):
        x, y = data
        for start in range(0, len(y), batch_size):
            yield (keras.tree.map_structure(lambda t: np.asarray(t[start:start + batch_size]), x),
                   np.asarray(y[start:start + batch_size]))
        return
    for element in data:
        if not isinstance(element, (tuple, list)) or len(element) != 2:
            raise KerasTransferError(
                f"{needs} needs a dataset of (inputs, labels) batches. "
                f"Received: an element of type {type(element).__name__}"
            )
        yield numpy(element[0]), numpy(element[1])


def reshuffled_batches(x, y, batch_size=None):
    """`(x, y)` arrays as a `tf.data.Dataset` of `(inputs, labels)` batches in a new order every epoch.

    Why: on TensorFlow, `fit(x, y, shuffle=True)` draws each epoch's permutation inside a `tf.data` map that Keras
    iterates afresh every epoch; once a global seed is set (`keras.utils.set_random_seed`, as every seeded run
    does) the draw repeats, and every epoch trains on the same batches (measured with Keras 3.15 and TF 2.21; JAX's
    arrays are permuted by numpy and reshuffle). Here `Dataset.shuffle(reshuffle_each_iteration=True)` orders the
    row indices, reproducibly under the seed, and each batch is gathered from the arrays (no copy of them is made).

    Args:
        x: an array, or a dict of arrays (a text model's token ids and mask), rows first.
        y: the labels, rows first.
        batch_size: rows per batch (`None`: 32, Keras's default); the last batch may be smaller.
    """
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    arrays = [np.asarray(a) for a in keras.tree.flatten((x, y))]

    def gather(indices):
        indices = np.sort(indices)  # rows read in order; the batch's order does not matter to a step
        return [a[indices] for a in arrays]

    def batch(indices):
        parts = tf.numpy_function(gather, [indices], [tf.as_dtype(a.dtype) for a in arrays], stateful=False)
        for part, a in zip(parts, arrays):
            part.set_shape((None,) + a.shape[1:])
        return keras.tree.pack_sequence_as((x, y), parts)

    rows = len(arrays[-1])
    return (tf.data.Dataset.range(rows).shuffle(rows, reshuffle_each_iteration=True).batch(batch_size or 32)
            .map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
