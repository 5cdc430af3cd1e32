"""Feature collapse: a from-scratch backbone whose BatchNorm is frozen at its initial statistics is caught (by
`check_features` and by the callback during `fit`); the same backbone with BatchNorm training is not, and learns."""

import keras
import numpy as np
import pytest

from conftest import as_numpy, make_small_cnn
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import build_classifier
from keras_transfer.models.freezing import freeze
from keras_transfer.training.diagnostics import (COLLAPSE_THRESHOLD, FeatureCollapseCheck, FeatureCollapseError,
                                                 check_features, feature_spread)


def _scratch_cnn(depth=6, size=32):
    """A small from-scratch backbone of conv (no bias) -> BatchNorm -> ReLU blocks. Its small initial kernels shrink
    the signal in 6 layers as Keras's default initialisers do in MobileNetV2's 50; frozen at its initial
    statistics, BatchNorm cannot undo it."""
    init = keras.initializers.RandomNormal(stddev=0.02, seed=0)
    inputs = keras.Input((size, size, 3))
    x = inputs
    for i in range(depth):
        x = keras.layers.Conv2D(8, 3, strides=2 if i in (1, 3) else 1, padding="same", use_bias=False,
                                kernel_initializer=init, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, x, name="scratch")


def _scratch_classifier(train_batchnorm):
    model = build_classifier(_scratch_cnn(), 2, preprocess="tf", augmentation="none")
    freeze(model, "full", train_batchnorm=train_batchnorm)
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
    return model


def _bright_half(n=32, size=32, seed=0):
    """Noise images whose class is which half is bright: top (0) or bottom (1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 100, (n, size, size, 3)).astype("float32")
    y = (np.arange(n) % 2).astype("int32")
    x[y == 0, : size // 2] += 155
    x[y == 1, size // 2:] += 155
    return x, y


class _EpochCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_callback_stops_fit_after_the_first_epoch_when_features_collapse():
    x, y = _bright_half()
    model = _scratch_classifier(train_batchnorm=False)
    counter = _EpochCounter()
    with pytest.raises(FeatureCollapseError, match="BatchNorm frozen at its initial statistics"):
        model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[counter, FeatureCollapseCheck(x[:8])])
    assert counter.epochs == 1


def test_trained_batchnorm_passes_the_check_and_learns_from_scratch():
    x, y = _bright_half()
    model = _scratch_classifier(train_batchnorm=True)
    check = FeatureCollapseCheck(x[:8])
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[check])
    assert check.spread > 100 * COLLAPSE_THRESHOLD  # measured: ~0.05
    assert len(history.history["loss"]) == 5
    assert history.history["accuracy"][-1] >= 0.9


def test_feature_spread_leaves_the_model_unchanged_and_reads_identical_images_as_collapsed():
    model = _scratch_classifier(train_batchnorm=True)
    x, _ = _bright_half(8)
    before = [as_numpy(v) for v in model.variables]
    training, inference = feature_spread(model, x), feature_spread(model, x, training=False, batch_size=4)
    assert training > 100 * inference  # batch statistics in training; the initial statistics in inference
    for variable, value in zip(model.variables, before):
        np.testing.assert_array_equal(as_numpy(variable), value)

    same = np.repeat(x[:1], len(x), axis=0)  # identical images: no spread, whatever the features' size
    with pytest.raises(FeatureCollapseError):
        check_features(model, same)


@pytest.mark.parametrize("kwargs, message", [
    ({"x": np.zeros((1, 32, 32, 3))}, r"at least 2 images.*Received: x\.shape=\(1, 32, 32, 3\)$"),
    ({"threshold": 0}, r"Received: threshold=0$"),
    ({"batch_size": 0}, r"Received: batch_size=0$"),
])
def test_bad_arguments_raise_one_line(kwargs, message):
    model = build_classifier(make_small_cnn(), 2, augmentation="none")
    arguments = {"x": np.zeros((4, 32, 32, 3)), **kwargs}
    with pytest.raises(KerasTransferError, match=message):
        check_features(model, **arguments)


def test_mobilenetv2_from_scratch_with_frozen_batchnorm_collapses():
    model = build_classifier("mobilenetv2", 2, weights=None, input_size=32, augmentation="none")
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    freeze(model, "full", train_batchnorm=False)
    with pytest.raises(FeatureCollapseError) as raised:
        check_features(model, x)
    message = str(raised.value)
    assert "\n" not in message and "weights=None" in message and "train_batchnorm=True" in message
    assert float(message.rpartition("spread=")[2]) < 1e-6  # measured: ~1e-13
    freeze(model, "full", train_batchnorm=True)
    assert check_features(model, x) > 1e-2  # measured: ~0.4 (batch statistics)
