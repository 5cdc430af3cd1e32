"""Numpy `(images, labels)` batches from either kind of training data the library takes: `(x, y)` arrays or a
`tf.data.Dataset` of `(x, y)` batches (feature caching and the linear probe read their data this way)."""

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError


def numpy_batches(data, batch_size, *, needs="This"):
    """Yields numpy `(inputs, labels)` batches (inputs: an array, or a dict of arrays) of `data` once, in order: arrays cut into `batch_size` pieces,
    a dataset's own batches as they come. `needs` names the caller in the error for a malformed dataset."""
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
