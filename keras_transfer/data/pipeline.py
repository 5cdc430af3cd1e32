"""The input pipeline: image paths and labels -> a batched, prefetched `tf.data.Dataset`.

Files are read by `images.read_image` (inside `tf.numpy_function`), so training reads every image the
way `predict` and the scan do: EXIF orientation applied, 16-bit, palette, RGBA and grayscale turned into
8-bit RGB. Decoding runs in parallel (`num_parallel_calls=AUTOTUNE`; PIL releases the GIL while it
decodes). Keras takes a `tf.data.Dataset` on the JAX backend too; there the GPU is hidden from TensorFlow,
which only feeds batches, so that it does not claim the memory JAX needs.
"""

import os
import warnings

import keras

from keras_transfer.errors import KerasTransferError
from keras_transfer.data.images import image_shape, read_image, resize_image


def _check(paths, labels, image_size, batch_size, cache):
    if len(paths) != len(labels) or not len(paths):
        raise KerasTransferError(f"paths and labels must be non-empty and of the same length. "
                                 f"Received: len(paths)={len(paths)}, len(labels)={len(labels)}")
    sides = image_size if isinstance(image_size, (tuple, list)) and len(image_size) == 2 else (image_size,)
    for name, value in [("image_size", side) for side in sides] + [("batch_size", batch_size)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KerasTransferError(f"{name} must be a positive int. Received: {name}={value!r}")
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise KerasTransferError(f"cache must be None, 'memory' or a file path prefix. Received: cache={cache!r}")


def _keep_tensorflow_off_the_gpu(tf):
    """On the JAX backend tf.data only feeds batches; a TensorFlow that initialises the GPU would claim the
    memory JAX needs. Hide the GPU from TensorFlow (before its first op; later, warn: it is too late)."""
    if keras.backend.backend() == "tensorflow":
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as error:
        if tf.config.get_visible_devices("GPU"):
            warnings.warn(f"TensorFlow already uses the GPU, so its tf.data pipeline may take GPU memory that the "
                          f"{keras.backend.backend()} backend needs ({error}).", stacklevel=3)


def make_dataset(paths, labels, *, image_size, batch_size, shuffle=False, seed=1337, cache=None):
    """A `tf.data.Dataset` of `(images, labels)` batches: float32 RGB in [0, 255] at `image_size` (bilinear),
    int32 labels.

    Args:
        paths: image file paths.
        labels: an int label per path.
        image_size: the output images' square side, or `(height, width)`.
        batch_size: batch size (the last batch may be smaller).
        shuffle: reshuffle the examples each epoch; the order follows from `seed`.
        seed: seed of the shuffle.
        cache: None (decode every epoch), `"memory"` (keep decoded images in memory after the first
            epoch) or a file path prefix (`tf.data` cache files there).

    Returns:
        A `tf.data.Dataset`, prefetched.

    Example:
    >>> import numpy as np; from PIL import Image
    >>> Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save("/tmp/kt_pipe.png")
    >>> images, labels = next(iter(make_dataset(["/tmp/kt_pipe.png"], [1], image_size=4, batch_size=2)))
    >>> tuple(images.shape), labels.dtype.name
    ((1, 4, 4, 3), 'int32')
    """
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    paths, labels = [os.fspath(p) for p in paths], [int(label) for label in labels]
    _check(paths, labels, image_size, batch_size, cache)
    _keep_tensorflow_off_the_gpu(tf)

    def read(path):
        return resize_image(read_image(path.decode("utf-8")), image_size)

    def load(path, label):
        image = tf.numpy_function(read, [path], tf.float32, stateful=False)
        image.set_shape((*image_shape(image_size), 3))
        return image, label

    autotune = tf.data.AUTOTUNE
    dataset = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), tf.constant(labels, tf.int32)))
    if shuffle and cache is None:  # shuffle the paths: cheap, and the buffer holds no images
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(load, num_parallel_calls=autotune, deterministic=True)
    if cache is not None:
        dataset = dataset.cache() if cache == "memory" else dataset.cache(os.fspath(cache))
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(autotune)
