"""Feature collapse: a model whose features no longer depend on the image, found before a run is wasted on it.

A backbone built with `weights=None` whose BatchNorm layers are frozen keeps them at their initial statistics
(mean 0, variance 1): they no longer normalise. Keras's default initialisers then shrink the signal layer after
layer, and a deep network's pooled features come out near zero for every image (MobileNetV2 at 32 px: about
1e-13; EfficientNetB0: about 1e-7). The head then cannot tell images apart: the loss sits at ln(2) (ln(k) for k
classes) and every prediction is the same. Training BatchNorm (batch statistics) or starting from pretrained
weights avoids it.

The measure, `feature_spread`: the mean over feature dimensions of the standard deviation across images, divided
by `1 + ` the mean absolute feature. The `1` is the unit scale a head trained at ordinary learning rates can use:
tiny features give their (tiny) absolute spread, large features their spread relative to their size, so both
features near zero and features that are large but the same for every image read as near 0. The features are
those the head sees in training (`training=True`: BatchNorm layers that train use batch statistics), computed
without changing the model. Measured at 32 px on random images, `weights=None`:

    VGG16 (no BatchNorm)                 1.1e-2
    ResNet50, BatchNorm frozen           1.7e-1      trainable  5.5e-1
    MobileNetV2, BatchNorm frozen        1.7e-13     trainable  4.1e-1
    EfficientNetB0, BatchNorm frozen     2.7e-7      trainable  4.0e-1

`COLLAPSE_THRESHOLD` (1e-4) lies between the largest collapsed value and the smallest healthy one, more than two
orders of magnitude from each.
"""

import functools

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import feature_extractor

COLLAPSE_THRESHOLD = 1e-4


class FeatureCollapseError(KerasTransferError):
    """The features feeding the head are (nearly) the same for every image."""


def feature_spread(model, x, *, batch_size=32, training=True):
    """How much the features feeding the head vary across the images `x`: ~0 when they collapsed.

    Args:
        model: a model made by `build_classifier`.
        x: at least two images, as the model takes them (`(n, height, width, 3)`, pixels in [0, 255]).
        batch_size: images per forward pass.
        training: compute the features as in training (the default: BatchNorm layers that train use batch
            statistics) or as in inference. Either way the model is not changed.

    Returns:
        `mean over feature dimensions of std across images / (1 + mean |feature|)`, a float.

    Example:
    >>> model = build_classifier("vgg16", 2, weights=None, input_size=32)
    >>> feature_spread(model, np.random.uniform(0, 255, (4, 32, 32, 3))) > COLLAPSE_THRESHOLD
    True
    """
    features = _features(model, x, batch_size, training)
    spread = features.std(axis=0).mean()
    return float(spread / (1.0 + np.abs(features).mean()))


def check_features(model, x, *, threshold=COLLAPSE_THRESHOLD, batch_size=32):
    """Raises `FeatureCollapseError` when `feature_spread(model, x)` is below `threshold`.

    Returns:
        The spread measured.

    Example:
    >>> model = build_classifier("vgg16", 2, weights=None, input_size=32)
    >>> check_features(model, np.random.uniform(0, 255, (4, 32, 32, 3))) > 0
    True
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
        raise KerasTransferError(f"threshold must be a number > 0. Received: threshold={threshold!r}")
    spread = feature_spread(model, x, batch_size=batch_size)
    if spread < threshold:
        raise FeatureCollapseError(
            f"The features feeding the head of '{model.name}' collapsed: they are nearly the same for every image "
            f"(spread {spread:.3g}, below {threshold:g}), so the loss stays at ln(classes) and every prediction "
            f"is the same. Likely cause: BatchNorm frozen at its initial statistics in a model built with "
            f"weights=None. Fix: train BatchNorm (freeze(model, ..., train_batchnorm=True)) or use pretrained "
            f"weights. Received: spread={spread:.3g}")
    return spread


class FeatureCollapseCheck(keras.callbacks.Callback):
    """Stops `fit` with `FeatureCollapseError` when the features collapsed after the first epoch.

    One forward pass over `x` (a few training images: 8 to 32 are enough) at the end of the run's first epoch.

    Args:
        x: training images, as the model takes them.
        threshold: the spread below which the features count as collapsed.

    Example:
    >>> model.fit(x, y, epochs=5, callbacks=[FeatureCollapseCheck(x[:16])])  # doctest: +SKIP
    """

    on_full_model = True  # in a cached-features phase it still checks the classifier, not the head model

    def __init__(self, x, *, threshold=COLLAPSE_THRESHOLD):
        super().__init__()
        self.x = x
        self.threshold = threshold
        self.spread = None
        self._checked = False

    def on_train_begin(self, logs=None):
        self._checked = False

    def on_epoch_end(self, epoch, logs=None):
        if not self._checked:
            self._checked = True
            self.spread = check_features(self.model, self.x, threshold=self.threshold)


def _features(model, x, batch_size, training):
    """The head's input features for `x`, flattened to `(n, d)` float64, through `stateless_call` (no variable
    changes: BatchNorm statistics and random seeds stay as they were)."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) < 2:
        raise KerasTransferError(f"The feature spread needs at least 2 images in x. Received: x.shape={x.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise KerasTransferError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size!r}")
    extractor = feature_extractor(model)
    forward = _stateless_forward(extractor, bool(training))
    trainable = [v.value for v in extractor.trainable_variables]
    non_trainable = [v.value for v in extractor.non_trainable_variables]
    batches = []
    for start in range(0, len(x), batch_size):
        batch = keras.ops.convert_to_tensor(x[start:start + batch_size], dtype="float32")
        out, _ = forward(trainable, non_trainable, [batch])
        batches.append(np.asarray(keras.ops.convert_to_numpy(out), dtype="float64").reshape(len(batch), -1))
    return np.concatenate(batches)


def _stateless_forward(extractor, training):
    """`extractor.stateless_call` with `training` fixed; compiled as a whole under JAX, whose eager mode would compile
    every operation on its own (MobileNetV2: 30 s against 8 s on two CPU cores)."""
    forward = functools.partial(extractor.stateless_call, training=training)
    if keras.backend.backend() == "jax":
        import jax  # lazy: JAX is loaded only under its own backend
        forward = jax.jit(forward)
    return forward
