"""The two-phase recipe on `tinybn` (tests/tiny_backbone.py: three conv + BatchNorm blocks) at 32 px with a handful of
images: phases, freeze reports, which weights moved,
the files it writes, and that the model stays an ordinary Keras model."""

import csv
import os

import keras
import numpy as np
import pytest
from conftest import as_numpy

from keras_transfer import build_classifier, fine_tune, get_class_names
from keras_transfer.errors import KerasTransferError

CLASSES = ["a", "b", "c"]


def _conv_weights_in(backbone, *prefixes):
    """Variables of the conv layers whose names start with `prefixes` (a kernel each: tinybn's convs have no bias)."""
    return sum(len(layer.weights) for layer in backbone.layers
               if layer.name.startswith(prefixes) and isinstance(layer, keras.layers.Conv2D))


def _kernels(model):
    backbone = model.get_layer("backbone")
    return {layer.name: as_numpy(layer.kernel) for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)}


def _changed(before, after):
    return sorted(name for name in before if not np.array_equal(before[name], after[name]))


@pytest.fixture
def tinybn():
    return build_classifier("tinybn", 3, weights=None, input_size=32, augmentation=None, class_names=CLASSES, seed=1)


@pytest.fixture
def data(tiny_xy):
    return tiny_xy(8, 32, 3)


def test_fine_tune_on_arrays(tinybn, data, tmp_path):
    model, (x, y) = tinybn, data
    backbone = model.get_layer("backbone")
    before = _kernels(model)
    checkpoint, log = str(tmp_path / "best.keras"), str(tmp_path / "log.csv")

    result = fine_tune(model, (x, y), head_epochs=1, fine_tune_epochs=1, fine_tune_learning_rate=1e-4,
                       checkpoint_path=checkpoint, csv_path=log, verbose=0)

    assert result.phases == ["head", "fine_tune"]
    head, fine = result.freeze_reports
    assert head.trainable_blocks == () and head.trainable_weights_after == 2
    assert fine.trainable_blocks == ("block2", "block3")  # the top 2 of 3 (the default n); BatchNorm stays frozen
    assert fine.trainable_weights_after == 2 + _conv_weights_in(backbone, "block2_", "block3_") == 4
    changed = _changed(before, _kernels(model))
    assert changed == sorted(name for name in before if name.startswith(("block2_", "block3_")))

    history = result.history
    assert history["phase"] == ["head", "fine_tune"]
    assert history["epoch"] == [0, 1]
    assert all(len(values) == 2 for values in history.values())
    assert len(history["loss"]) == sum(len(h.epoch) for h in result.histories)
    assert result.head is result.histories[0] and result.fine == result.histories[1:]

    assert os.path.isfile(checkpoint)
    assert get_class_names(keras.saving.load_model(checkpoint)) == CLASSES
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1]

    # Still an ordinary Keras model afterwards.
    plain = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(plain.history["loss"][0])
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (8, 3) and np.all(np.isfinite(probabilities))


def test_fine_tune_on_a_tf_data_dataset(tinybn, data):
    import tensorflow as tf

    model, (x, y) = tinybn, data
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    val = tf.data.Dataset.from_tensor_slices((x[:4], y[:4])).batch(4)
    before = _kernels(model)

    result = fine_tune(model, train, val, head_epochs=1, fine_tune_epochs=1, fine_tune_learning_rate=1e-4, verbose=0)

    assert result.phases == ["head", "fine_tune"]
    assert [r.trainable_blocks for r in result.freeze_reports] == [(), ("block2", "block3")]
    assert "val_loss" in result.history and len(result.history["val_loss"]) == 2
    assert _changed(before, _kernels(model)) == sorted(n for n in before if n.startswith(("block2_", "block3_")))
    assert model.predict(train, verbose=0).shape == (8, 3)


def test_gradual_unfreezing(tinybn, data):
    model, (x, y) = tinybn, data
    backbone = model.get_layer("backbone")

    result = fine_tune(model, (x, y), head_epochs=1, fine_tune_epochs=1, unfreeze="gradual", n=2, verbose=0)

    assert result.phases == ["head", "fine_tune_1", "fine_tune_2"]
    assert [r.trainable_blocks for r in result.freeze_reports] == [(), ("block3",), ("block2", "block3")]
    assert [r.trainable_weights_after for r in result.freeze_reports] == [
        2, 2 + _conv_weights_in(backbone, "block3_"), 2 + _conv_weights_in(backbone, "block2_", "block3_")]
    assert result.history["phase"] == ["head", "fine_tune_1", "fine_tune_2"]
    assert result.history["epoch"] == [0, 1, 2]


def test_unfreeze_from_a_layer(tinybn, data):
    model, (x, y) = tinybn, data
    before = _kernels(model)

    result = fine_tune(model, (x, y), head_epochs=1, fine_tune_epochs=1, unfreeze="from_layer",
                       layer="block2_conv", fine_tune_learning_rate=1e-4, verbose=0)

    assert result.phases == ["head", "fine_tune"]
    assert result.freeze_reports[1].trainable_weights_after == 2 + 2  # block2_conv and block3_conv
    assert _changed(before, _kernels(model)) == ["block2_conv", "block3_conv"]


def test_unknown_unfreeze(small_cnn, tiny_xy):
    model = build_classifier(small_cnn(), 3, augmentation=None)
    with pytest.raises(KerasTransferError) as info:
        fine_tune(model, tiny_xy(4, 32, 3), unfreeze="gradul")
    message = str(info.value)
    assert "Did you mean 'gradual'" in message and "Received: unfreeze='gradul'" in message


@pytest.mark.parametrize("bad", [dict(unfreeze="from_layer", layer="conv_ee"), dict(unfreeze="top_blocks", n=7)])
def test_bad_phase_two_arguments_fail_before_training(small_cnn, tiny_xy, bad):
    model = build_classifier(small_cnn(), 3, augmentation=None)
    head = as_numpy(model.get_layer("predictions").kernel)
    with pytest.raises(KerasTransferError):
        try:
            fine_tune(model, tiny_xy(4, 32, 3), head_epochs=1, fine_tune_epochs=1, verbose=0, **bad)
        finally:
            np.testing.assert_array_equal(head, as_numpy(model.get_layer("predictions").kernel))
