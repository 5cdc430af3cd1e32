"""The input pipeline: image paths and labels -> a batched, prefetched `tf.data.Dataset`.

Decoding runs in TensorFlow ops (`tf.io.read_file`, `decode_jpeg`/`decode_png`, `tf.image.resize`), in
parallel and outside the GIL, for the files that TensorFlow decodes exactly like `images.read_image` (the
reader the scan chose from each file's header: 8-bit JPEG and PNG without EXIF rotation). The others (EXIF
rotation, CMYK, 16-bit, transparent palettes, BMP, GIF, WebP) go through `read_image` (PIL, inside
`tf.numpy_function`), so every file reads the way `predict` reads it. A file that fails to decode is skipped
without stopping the epoch and named once, at the end of the pass, with the reason (`SkippedFiles`); a file
that has vanished since the scan stops the run instead (the data changed under it).

Keras takes a `tf.data.Dataset` on the JAX backend too; there the GPU is hidden from TensorFlow, which only
feeds batches, so that it does not claim the memory JAX needs.
"""

import logging
import os
import threading

import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.data.images import READERS, ImageDecodeError, image_shape, read_header, read_image, tensorflow

SHUFFLE_BUFFER_BYTES = 128 * 2**20  # held by the shuffle that follows a cache: flat memory whatever the data size
log = logging.getLogger(__name__)


class SkippedFiles:
    """The files of one dataset that failed to decode while it was iterated, and why.

    The pipeline drops an image that fails to decode (`ignore_errors`; another image takes its place) and
    records, per batch, the paths that arrived; at the end of each pass the ones missing are read again by
    `read_image` for the reason, logged once by name and kept in `skipped` (`{path: reason}`). A missing
    file is not skipped: the pass raises `KerasTransferError` naming it, since the data changed after the
    scan; so does a pass where more than half the files failed.
    """

    def __init__(self, paths, name="data"):
        self.name, self._expected = name, {os.fsencode(p) for p in paths}
        self._arrived, self._lock, self.skipped, self._open = set(), threading.RLock(), {}, False

    def _start(self):
        with self._lock:
            self._arrived, self._open = set(), True
        return np.bool_(False)

    def finish(self):
        """Ends the pass in progress, if one is: names the files of it that failed to decode.

        Keras stops a pass at its known number of steps; the end marker after the last batch then runs only if
        `prefetch` reached it in the background, which is a race. Call this once a pass has been consumed
        whole (after `fit` or `evaluate` returned) before reading `skipped`."""
        with self._lock:
            if self._open:
                self._end()

    def _arrive(self, paths, labels):
        with self._lock:
            self._arrived.update(paths.tolist())
        return labels

    def _end(self):
        """Ends a pass: names its files that failed to decode. Run by the end marker (prefetch's thread) or by
        `finish()`, under the (reentrant) lock for the whole of it, so a pass ends once."""
        with self._lock:
            self._open = False
            new = {}
            for raw in sorted(self._expected - self._arrived):
                path = os.fsdecode(raw)
                if path in self.skipped:
                    continue
                if not os.path.exists(path):
                    raise KerasTransferError(f"Image {path} of the {self.name} data is gone (no such file): the "
                                             f"data changed since it was scanned. Put it back, or start a new run "
                                             f"on the data as it is now.")
                try:
                    read_image(path)
                    reason = "TensorFlow's decoder rejected it"
                except ImageDecodeError as error:
                    reason = error.reason
                new[path] = reason
            if new:
                self.skipped.update(new)
                log.warning("Skipped %d file(s) of the %s data that failed to decode: %s", len(new), self.name,
                            "; ".join(f"{path} ({reason})" for path, reason in new.items()))
            if 2 * len(self.skipped) > len(self._expected):  # a second pass could not fill their places
                raise KerasTransferError(f"{len(self.skipped)} of the {len(self._expected)} images of the "
                                         f"{self.name} data failed to decode (named above): too few remain to train "
                                         f"on. First: {next(iter(self.skipped.items()))}")
            return np.bool_(False)


def _check(paths, labels, image_size, batch_size, cache, readers):
    if len(paths) != len(labels) or not len(paths):
        raise KerasTransferError(f"paths and labels must be non-empty and of the same length. "
                                 f"Received: len(paths)={len(paths)}, len(labels)={len(labels)}")
    sides = image_size if isinstance(image_size, (tuple, list)) and len(image_size) == 2 else (image_size,)
    for name, value in [("image_size", side) for side in sides] + [("batch_size", batch_size)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KerasTransferError(f"{name} must be a positive int. Received: {name}={value!r}")
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise KerasTransferError(f"cache must be None, 'memory' or a file path prefix. Received: cache={cache!r}")
    if readers is not None and (len(readers) != len(paths) or set(readers) - set(READERS)):
        raise KerasTransferError(f"readers must hold one of {READERS} per path. Received: "
                                 f"{len(readers)} readers for {len(paths)} paths")


def shuffle_buffer(images, size):
    """Images the shuffle after a cache holds: 128 MiB of uint8 images (850 at 224 px), at least 64, at most all."""
    return int(min(images, max(64, SHUFFLE_BUFFER_BYTES // (size[0] * size[1] * 3))))


def choose_readers(paths):
    """The reader of each path from its header (`images.read_header`); a file whose header cannot be read
    gets `"pil"`, which names what is wrong with it when the pipeline reaches it."""
    readers = []
    for path in paths:
        try:
            readers.append(read_header(path).reader)
        except ImageDecodeError:
            readers.append("pil")
    return readers


def decode_and_resize(tf, path, reader, size, antialias, used=READERS):
    """One file -> float32 RGB `(height, width, 3)` in [0, 255] at `size`, bilinear (an image already at `size`
    keeps its exact values). `reader` indexes `READERS`: TensorFlow's JPEG or PNG decoder, or `read_image`;
    `used` lists the readers that occur, so that data of one kind runs its decoder without a switch."""
    def pil():
        image = tf.numpy_function(lambda p: read_image(os.fsdecode(p)), [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, (None, None, 3))

    decoders = {"jpeg": lambda: tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE"),
                "png": lambda: tf.io.decode_png(tf.io.read_file(path), channels=3), "pil": pil}
    if len(set(used)) == 1:
        image = decoders[next(iter(used))]()
    else:
        image = tf.switch_case(reader, [decoders[name] for name in READERS])
    image = tf.image.resize(image, size, method="bilinear", antialias=antialias)
    return tf.ensure_shape(image, (*size, 3))


def make_dataset(paths, labels, *, image_size, batch_size, shuffle=False, seed=1337, cache=None, antialias=False,
                 readers=None, skipped=None, include_paths=False, fill_skipped=True):
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
            epoch) or a file path prefix (`tf.data` cache files there: memory stays flat). Cached images
            are stored as uint8 (a quarter of the size; values rounded to whole levels).
        antialias: antialiased (area-weighted) downscaling, as PIL's resize does; off by default, as in
            Keras's own loader: it costs about twice the CPU per image (see docs/results.md).
        readers: the reader per path (`"jpeg"`, `"png"`, `"pil"`, see `images.read_header`); by default
            read from each file's header.
        skipped: a `SkippedFiles` to record the files that fail to decode into; by default a new one.
        include_paths: yield `(images, labels, paths)` batches (which files arrived, in order).
        fill_skipped: give a skipped file's place to an image of a second pass, so that every epoch has its
            full number of steps and Keras knows the count; off for an evaluation (no image counted twice).

    Returns:
        A `tf.data.Dataset`, prefetched.

    Example:
    >>> import numpy as np; from PIL import Image
    >>> Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save("/tmp/kt_pipe.png")
    >>> images, labels = next(iter(make_dataset(["/tmp/kt_pipe.png"], [1], image_size=4, batch_size=2)))
    >>> tuple(images.shape), labels.dtype.name
    ((1, 4, 4, 3), 'int32')
    """
    tf = tensorflow()  # under JAX, TensorFlow loads only for a tf.data pipeline, a resize or an export
    paths, labels = [os.fspath(p) for p in paths], [int(label) for label in labels]
    _check(paths, labels, image_size, batch_size, cache, readers)
    readers = list(readers) if readers is not None else choose_readers(paths)
    skipped = skipped if skipped is not None else SkippedFiles(paths)
    size = image_shape(image_size)

    plain = tf.autograph.experimental.do_not_convert  # no Python control flow to convert: saves ~0.8 s of setup

    @plain
    def load(path, label, reader):
        return decode_and_resize(tf, path, reader, size, antialias, used=set(readers)), label, path

    @plain
    def arrive(x, y, p):
        return x, tf.ensure_shape(tf.numpy_function(skipped._arrive, [p, y], tf.int32), [None]), p

    autotune = tf.data.AUTOTUNE
    dataset = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), tf.constant(labels, tf.int32),
                                                  tf.constant([READERS.index(r) for r in readers], tf.int32)))
    if shuffle and cache is None:  # shuffle the paths: cheap, and the buffer holds no images
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(load, num_parallel_calls=autotune, deterministic=True).ignore_errors()
    if cache is not None:
        dataset = dataset.map(plain(lambda x, y, p: (tf.cast(tf.round(x), tf.uint8), y, p)))
        dataset = dataset.cache() if cache == "memory" else dataset.cache(os.fspath(cache))
        if shuffle:  # a bounded buffer: the cache is read in its first order, mixed this far
            dataset = dataset.shuffle(shuffle_buffer(len(paths), size), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.map(plain(lambda x, y, p: (tf.cast(x, tf.float32), y, p)), num_parallel_calls=autotune)
    if fill_skipped:  # a skipped file's place goes to an image of a second pass: every epoch keeps its steps, and
        # Keras knows their number (an unknown count makes it warn that the input "ran out of data")
        dataset = dataset.concatenate(dataset).take(len(paths))
    dataset = dataset.batch(batch_size).map(arrive)
    dataset = _marker(tf, skipped._start, dataset).concatenate(dataset).concatenate(_marker(tf, skipped._end, dataset))
    if fill_skipped:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-len(paths) // batch_size)))
    if not include_paths:
        dataset = dataset.map(plain(lambda x, y, p: (x, y)))
    return dataset.prefetch(autotune)


def _marker(tf, function, like):
    """An empty dataset shaped like `like` that calls `function` when a pass reaches it (start or end)."""
    plain = tf.autograph.experimental.do_not_convert
    dummy = tf.nest.map_structure(lambda spec: tf.zeros([d or 0 for d in spec.shape], spec.dtype), like.element_spec)
    call = tf.data.Dataset.range(1).map(plain(lambda _: tf.numpy_function(function, [], tf.bool, stateful=True)))
    return call.filter(plain(lambda flag: flag)).map(plain(lambda _: dummy))
