"""Fine-tuning after the linear probe (issue 24): the probe's standardisation cannot put a huge weight on a
near-constant feature, so fine-tuning starts at the probe's loss; and `keep_start` keeps the fine-tuned weights
only if they beat the probe on validation accuracy, the loss breaking ties."""

import keras
import numpy as np

from keras_transfer.models.classifier import build_classifier
from keras_transfer.models.saving import load_keras_file
from keras_transfer.training.callbacks import AtomicModelCheckpoint
from keras_transfer.training.linear_probe import RELATIVE_STD_FLOOR, standardiser
from keras_transfer.training.phases import _keep_better, _validation_score
from keras_transfer.training.presets import get_preset
from keras_transfer.training.recipes import RecipeOptions, run_recipe


def test_a_near_constant_feature_is_not_scaled_up_to_the_others():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 4)) * [1.0, 0.5, 2.0, 0.0]
    features[:, 3] = 0.7 + rng.normal(size=40) * 2e-9  # a pooled MiniLM dimension: std ~2e-9
    mean, std = standardiser(features)
    assert std[3] >= RELATIVE_STD_FLOOR * std.max() and np.all(std[:3] == features[:, :3].std(0))
    assert np.abs((features - mean) / std)[:, 3].max() < 1e-4  # it stays quiet instead of becoming unit-scale
    assert np.all(standardiser(np.ones((5, 3)))[1] == 1.0)  # all constant: nothing to scale by


def _backbone_with_a_near_constant_channel():
    """A small conv backbone whose last channel is 1 plus ~1e-9 of the pixels (an almost dead feature)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(inputs)
    conv = keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="conv2")
    outputs = conv(x)
    kernel, bias = conv.get_weights()
    kernel[..., -1] *= 1e-9
    bias[-1] = 1.0
    conv.set_weights([kernel, bias])
    return keras.Model(inputs, outputs, name="small")


def test_fine_tuning_starts_at_the_probe_loss_with_a_near_constant_feature():
    model = build_classifier(_backbone_with_a_near_constant_channel(), 3, input_size=32, augmentation=None,
                             dropout=0.0)
    rng = np.random.default_rng(0)
    y = (np.arange(36) % 3).astype("int32")
    x = rng.uniform(0, 120, size=(36, 32, 32, 3)).astype("float32") + (y * 60)[:, None, None, None]
    options = RecipeOptions(strategy="full", fine_tune_epochs=1, batch_size=8)
    result = run_recipe(model, (x[:24], y[:24]), (x[24:], y[24:]), recipe="lp_ft", options=options, verbose=0)
    probe_loss = result.histories[0].probe.loss
    first = result.histories[1].history["loss"][0]
    assert np.isfinite(first) and first <= 2 * probe_loss + 0.05, (probe_loss, first)


def _two_class_model(kernel, bias):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=[keras.metrics.SparseCategoricalAccuracy(
        name="accuracy")])
    model.set_weights([np.asarray(kernel, "float32"), np.asarray(bias, "float32")])
    return model


def test_fine_tuned_weights_with_a_lower_loss_but_a_lower_accuracy_are_not_kept(tmp_path):
    val = (np.array([[1.0], [1.0], [1.0], [-1.0]], "float32"), np.array([1, 1, 1, 1]))
    model = _two_class_model([[0.0, 0.0]], [0.0, 0.1])  # the probe: class 1 everywhere, just (p 0.525)
    start = (model.get_weights(), _validation_score(model, val))
    model.set_weights([np.array([[-1.826, 1.826]], "float32"), np.array([0.0, 3.25], "float32")])
    tuned = _validation_score(model, val)
    assert tuned[0] == 0.75 and start[1][0] == 1.0 and -tuned[1] < -start[1][1]  # lower loss, lower accuracy
    checkpoint = AtomicModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True)
    checkpoint.set_model(model)
    model.save(tmp_path / "best.keras")  # what the checkpoint kept: the lower validation loss
    history = keras.callbacks.History()
    _keep_better(model, start, val, history, get_preset("fine_tune"), [checkpoint])
    assert history.kept_start
    for kept in (model, load_keras_file(tmp_path / "best.keras")):
        assert all(np.array_equal(a, b) for a, b in zip(kept.get_weights(), start[0]))

    model.set_weights([np.array([[-1.0, 1.0]], "float32"), np.array([0.0, 3.0], "float32")])  # accuracy 1, lower loss
    better = keras.callbacks.History()
    _keep_better(model, start, val, better, get_preset("fine_tune"), [checkpoint])
    assert not getattr(better, "kept_start", False) and model.get_weights()[1][1] == 3.0
