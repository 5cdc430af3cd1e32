"""Feature caching: with a frozen backbone and no augmentation, run the backbone once and train the head
on the cached features.

The features (the input of the model's head: after preprocessing, backbone and pooling) are computed once
per image and kept in memory (numpy) or streamed in chunks to raw float32 files in a folder and read back
batch by batch through a memory map, so memory stays flat for data larger than memory. The head is trained
as a small model `Input(features) -> the full model's own "dropout" and "predictions" layers`, so training
updates the full model's head in place and the full model then predicts exactly like the cached path.
A text classifier (`build_text_classifier`, token ids in) caches the same way: its features are the pooled
outputs of the frozen encoder, computed once per text from the token-id batches of its `tf.data` pipeline.

What feeds the head is chosen per backend, the faster of the two on each (docs/results.md, feature caching):
on TensorFlow a `tf.data` pipeline of the cached arrays (`CachedFeatures.as_tf_dataset`: a gather per batch
from tensors in memory, or a read of the batch's rows from the memory map), which spares the Python generator
Keras makes of a `keras.utils.PyDataset`; on JAX the `PyDataset` itself (Keras iterates it in plain Python
there). Both give the same batches in the same seeded order.
"""

import json
import logging
import os

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.freezing import freeze
from keras_transfer.training.batches import numpy_batches
from keras_transfer.models.classifier import feature_extractor, get_backbone, head_model
from keras_transfer.training.distribution import predict_batch
from keras_transfer.training.presets import compile_model, get_preset, phase_callbacks

log = logging.getLogger(__name__)


def check_cacheable(model, preset=None):
    """Raises unless `model` can train on cached features: no augmentation, a frozen backbone."""
    get_backbone(model)
    if any(layer.name == "augmentation" for layer in model.layers):
        raise KerasTransferError(
            "Feature caching computes each image's features once, so it cannot train with augmentation (each "
            "epoch would need new features). Build the model with augmentation='none', or turn caching off. "
            "Received: augmentation layer in model"
        )
    if preset is not None and preset.strategy != "head_only":
        raise KerasTransferError(
            "Feature caching needs a frozen backbone (the head-only phase); this phase trains backbone layers. "
            f"Use strategy='head_only' for the cached phase. Received: strategy={preset.strategy!r}"
        )


class CachedFeatures(keras.utils.PyDataset):
    """Cached `(features, labels)`: in memory, or on disk read back batch by batch through a memory map.

    Each epoch's order is the next permutation of `np.random.default_rng(seed)` (the first one for the first
    epoch of a `fit`), cut into batches whose rows are sorted (a memory map is read sequentially); the
    `PyDataset` and `as_tf_dataset` give the same batches.

    Attributes:
        features: a numpy array or a read-only `np.memmap` of shape `(images, feature_dim)`, float32.
        labels: a numpy array of labels.
        batch_size: the batch size of the source data.
        shuffle: reorder the batches' images each epoch (a seeded permutation).
        seed: the seed of that order.
    """

    def __init__(self, features, labels, batch_size, *, shuffle=False, seed=1337):
        super().__init__()
        self.features, self.labels, self.batch_size = features, labels, batch_size
        self.shuffle, self.seed, self._rng = shuffle, seed, np.random.default_rng(seed)
        self._order = np.arange(len(labels))
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __getitem__(self, index):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return np.asarray(self.features[rows], "float32"), self.labels[rows]

    def on_epoch_end(self):
        if self.shuffle:
            self._order = _epoch_order(self._rng, len(self.labels), self.batch_size)

    def as_tf_dataset(self, batch_size=None):
        """The same `(features, labels)` batches as a `tf.data.Dataset`, each iteration the next epoch's order.

        In memory, each batch is a gather from the arrays held as tensors; on disk, the batch's sorted rows
        are read from the memory map (one batch in memory at a time). A fresh dataset starts the order
        from `seed` again, as a fresh `CachedFeatures` does.

        Args:
            batch_size: the batch size of the dataset (default: `self.batch_size`).

        Example:
        >>> cached = CachedFeatures(np.ones((5, 4), "float32"), np.arange(5), 2, shuffle=True)
        >>> [len(labels) for _, labels in cached.as_tf_dataset()]
        [2, 2, 1]
        """
        import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

        size, rows, rng = batch_size or self.batch_size, len(self.labels), np.random.default_rng(self.seed)
        order = (lambda: _epoch_order(rng, rows, size)) if self.shuffle else (lambda: np.arange(rows))
        epoch = tf.data.Dataset.range(1).map(
            lambda _: tf.ensure_shape(tf.numpy_function(lambda: order().astype("int64"), [], tf.int64), [rows]))
        batches = epoch.flat_map(lambda index: tf.data.Dataset.from_tensor_slices(index).batch(size))
        dim, label = self.features.shape[1], tf.as_dtype(self.labels.dtype)
        if isinstance(self.features, np.memmap):
            def read(index):
                features, labels = tf.numpy_function(lambda i: (np.asarray(self.features[i]), self.labels[i]),
                                                     [index], (tf.float32, label))
                shape = [None, *self.labels.shape[1:]]  # a label, or a row of targets (regression, multi-label)
                return tf.ensure_shape(features, [None, dim]), tf.ensure_shape(labels, shape)
        else:
            features, labels = tf.constant(self.features, tf.float32), tf.constant(self.labels)

            def read(index):
                return tf.gather(features, index), tf.gather(labels, index)
        data = batches.map(read, num_parallel_calls=tf.data.AUTOTUNE)
        return data.apply(tf.data.experimental.assert_cardinality(-(-rows // size))).prefetch(tf.data.AUTOTUNE)


def _epoch_order(rng, rows, batch_size):
    """The next permutation of `rng`, with the rows of each batch sorted (sequential memory-map reads)."""
    order = rng.permutation(rows)
    return np.concatenate([np.sort(order[i:i + batch_size]) for i in range(0, rows, batch_size)])


def extract_features(model, data, *, cache="memory", name="train", batch_size=None, shuffle=False, seed=1337):
    """Runs `model`'s preprocessing, backbone and pooling once over `data` and caches the features.

    Args:
        model: a model made by `build_classifier` (no augmentation).
        data: `(images, labels)` arrays, or a `tf.data.Dataset` of `(images, labels)` batches.
        cache: `"memory"`, or a folder path: features are streamed there chunk by chunk
            (`<name>.features.f32`, `<name>.json`, `<name>.labels.npy`) and memory-mapped back.
        name: the file name stem in a cache folder (e.g. `"train"`, `"val"`).
        batch_size: batch size for arrays (default 32); a dataset keeps its own batches.
        shuffle: reorder the cached images each epoch, in a seeded order.
        seed: the seed of that order.

    Returns:
        A `CachedFeatures` (a `keras.utils.PyDataset` of `(features, labels)` batches).

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32, augmentation="none")
    >>> cached = extract_features(model, (np.zeros((5, 32, 32, 3)), np.arange(5) % 3), batch_size=2)
    >>> cached.features.shape, len(cached)
    ((5, 1280), 3)
    """
    check_cacheable(model)
    if cache != "memory" and not isinstance(cache, (str, os.PathLike)):
        raise KerasTransferError(f"cache must be 'memory' or a folder path. Received: cache={cache!r}")
    extractor = feature_extractor(model)
    size, labels, chunks, rows = batch_size, [], [], 0
    path = None if cache == "memory" else os.path.join(os.fspath(cache), f"{name}.features.f32")
    if path:
        os.makedirs(os.fspath(cache), exist_ok=True)
    with open(path, "wb") if path else _NoFile() as sink:
        for x, y in numpy_batches(data, batch_size or 32, needs="Feature caching"):
            size = size or len(y)  # the batch's rows: `x` is an array of images or a dict of a text's token ids
            features = np.asarray(keras.ops.convert_to_numpy(predict_batch(extractor, x)), "float32")
            features = features.reshape(len(y), -1)
            sink.write(features.tobytes()) if path else chunks.append(features)
            labels.append(y)
            rows += len(y)
    if not rows:
        raise KerasTransferError(f"No images to cache in the {name} data. Received: {rows} images")
    labels = np.concatenate(labels)
    dim = features.shape[1]
    if path:
        with open(os.path.join(os.fspath(cache), f"{name}.json"), "w") as f:
            json.dump({"rows": rows, "dim": dim, "dtype": "float32"}, f)
        np.save(os.path.join(os.fspath(cache), f"{name}.labels.npy"), labels)
        features = np.memmap(path, dtype="float32", mode="r", shape=(rows, dim))
    else:
        features = np.concatenate(chunks)
    return CachedFeatures(features, labels, size, shuffle=shuffle, seed=seed)


class _NoFile:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class _OnFullModel(keras.callbacks.Callback):
    """Runs a callback (a checkpoint) against the full model while the head model trains."""

    def __init__(self, callback, full_model):
        super().__init__()
        self.callback, self.full_model = callback, full_model

    def set_model(self, model):
        self.callback.set_model(self.full_model)

    def set_params(self, params):
        self.callback.set_params(params)

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return getattr(object.__getattribute__(self, "callback"), name)
        return object.__getattribute__(self, name)


def _for_head(callbacks, model):
    """Checkpoints, and callbacks that say they look at the full model (`on_full_model`), see the full model."""
    saves = (keras.callbacks.ModelCheckpoint,)
    return [_OnFullModel(c, model) if isinstance(c, saves) or getattr(c, "on_full_model", False) else c
            for c in callbacks]


def train_phase_cached(model, train, val=None, *, preset, initial_epoch=0, callbacks=(), class_weight=None,
                       verbose="auto", cache="memory", shuffle=True, seed=1337, jit_compile="auto", state=None,
                       head_batch_size=None):
    """Like `recipes.train_phase` for the head-only phase, on cached features. Returns `(History, FreezeReport)`.

    Checkpoint callbacks save the full model; the others (EarlyStopping, CSVLogger, ...) see the head
    model, whose weights are the full model's head weights. The head model trains with the full model's
    optimizer (the same variables), so the optimizer state saved with the full model is the one that
    trained, and a resumed run (`state`, a `checkpoints.TrainingState`) continues it.

    The head trains on batches of the source data's size (the same steps as the uncached phase) unless
    `head_batch_size` is given: larger batches take fewer steps per epoch, and a head's step is cheap per
    image at larger batches (measured: a step of 256 images costs 2-3.5x one of 32, not 8x), but they are
    other optimisation steps than the uncached phase's, so this is opt-in.
    """
    check_cacheable(model, preset)
    if head_batch_size is not None:
        check_head_batch_size(head_batch_size)
    report = freeze(model, preset.strategy, n=preset.n, layer=preset.layer, recompile=False)
    compile_model(model, preset, jit_compile=jit_compile)  # the full model is returned compiled, as uncached
    model.optimizer.build(model.trainable_variables)  # so a checkpoint of it loads without an optimizer warning
    log.info("Head phase: training on cached features (%s); the backbone runs once per image.",
             "in memory" if cache == "memory" else cache)
    train = extract_features(model, train, cache=cache, name="train", shuffle=shuffle, seed=seed)
    val = None if val is None else extract_features(model, val, cache=cache, name="val")
    if head_batch_size is not None:
        train = CachedFeatures(train.features, train.labels, head_batch_size, shuffle=shuffle, seed=seed)
    head = head_model(model)
    compile_model(head, preset, jit_compile=jit_compile)
    head.optimizer = model.optimizer  # one optimizer for both: built on the head's variables, saved with the model
    callbacks = phase_callbacks(preset, has_validation=val is not None, model=model) + _for_head(callbacks, model)
    if state is not None:
        state.watch(model, callbacks)  # a resumed phase: the saved optimizer state goes into the shared optimizer
        callbacks.append(state)
    if keras.backend.backend() == "tensorflow":  # measured faster there; the same batches (see the module doc)
        train, val = train.as_tf_dataset(), None if val is None else val.as_tf_dataset()
    history = head.fit(train, validation_data=val, epochs=initial_epoch + preset.epochs, initial_epoch=initial_epoch,
                       callbacks=callbacks, class_weight=class_weight, verbose=verbose,
                       shuffle=False)  # `train` shuffles itself, in its seeded order
    return history, report


def check_head_batch_size(head_batch_size):
    """Raises unless `head_batch_size` is a positive integer."""
    if isinstance(head_batch_size, bool) or not isinstance(head_batch_size, (int, np.integer)) or head_batch_size < 1:
        raise KerasTransferError(f"head_batch_size must be a positive integer or None. "
                                 f"Received: head_batch_size={head_batch_size!r}")


def train_head_cached(model, train, val=None, *, preset="feature_extraction", epochs=None, learning_rate=None,
                      cache="memory", callbacks=(), class_weight=None, shuffle=True, seed=1337, verbose="auto",
                      head_batch_size=None):
    """Trains `model`'s head on cached backbone features; the backbone stays frozen.

    Args:
        model: a model made by `build_classifier` with `augmentation="none"`.
        train: `(images, labels)` arrays (batch size 32) or `tf.data.Dataset`s of `(images, labels)`.
        val: the validation data, as `train`.
        preset: a head-only preset name or `Preset`; `epochs`, `learning_rate` override it.
        cache: `"memory"` or a folder to stream the features to (for data larger than memory).
        callbacks: extra Keras callbacks; a `ModelCheckpoint` saves the full model.
        shuffle: reorder the cached training images each epoch, in a seeded order.
        seed: the seed of that order.
        head_batch_size: train the head on batches of this size instead of the source's (fewer, cheaper
            steps; other steps than the uncached phase's, so opt-in).

    Returns:
        The head phase's `keras.callbacks.History`. `model` (backbone + trained head) predicts like the
        head on the cached features.

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32, augmentation="none")
    >>> x, y = np.random.rand(8, 32, 32, 3) * 255, np.arange(8) % 3
    >>> train_head_cached(model, (x, y), epochs=2, verbose=0).epoch
    [0, 1]
    """
    preset = get_preset(preset, epochs=epochs, learning_rate=learning_rate)
    history, _ = train_phase_cached(model, train, val, preset=preset, callbacks=callbacks, class_weight=class_weight,
                                    verbose=verbose, cache=cache, shuffle=shuffle, seed=seed,
                                    head_batch_size=head_batch_size)
    return history
