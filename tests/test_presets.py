"""Presets: overrides, errors, the loss/metrics compile_model picks, callbacks, optimizers."""

import os

import keras
import numpy as np
import pytest
from conftest import as_numpy

from keras_transfer import build_classifier
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.heads import build_model
from keras_transfer.training.callbacks import selection_value
from keras_transfer.training.presets import (OPTIMIZERS, PRESETS, Preset, SparseCategoricalCrossentropyWithSmoothing,
                                    compile_model, get_preset, make_optimizer, phase_callbacks, run_callbacks)


def classifier(small_cnn, classes):
    return build_classifier(small_cnn(filters=(4, 4, 4, 4, 4)), classes, augmentation=None)


def test_get_preset_override_replaces_only_the_given_fields():
    base = PRESETS["fine_tune"]
    preset = get_preset("fine_tune", learning_rate=1e-4, epochs=None, optimizer="sgd")
    assert preset.learning_rate == 1e-4 and preset.optimizer == "sgd"
    assert preset.epochs == base.epochs  # None means "keep"
    assert (preset.strategy, preset.n, preset.patience) == (base.strategy, base.n, base.patience)
    assert base.learning_rate != 1e-4 and PRESETS["fine_tune"] is base  # the registered preset is unchanged


def test_get_preset_accepts_a_preset():
    custom = Preset("mine", strategy="full", epochs=2)
    assert get_preset(custom) == custom
    assert get_preset(custom, epochs=3).epochs == 3


def test_unknown_preset():
    with pytest.raises(KerasTransferError) as info:
        get_preset("fine_tun")
    message = str(info.value)
    assert "Did you mean 'fine_tune'" in message and "feature_extraction" in message
    assert "Received: preset='fine_tun'" in message


def test_unknown_preset_field():
    with pytest.raises(KerasTransferError) as info:
        get_preset("fine_tune", lr=1e-4)
    message = str(info.value)
    assert "lr" in message and "learning_rate" in message and "Received: lr=0.0001" in message


def test_two_classes_compile_with_binary_cross_entropy(small_cnn):
    model = classifier(small_cnn, 2)
    preset = compile_model(model)
    assert preset == PRESETS["feature_extraction"]
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)


def test_more_classes_compile_with_sparse_categorical_cross_entropy(small_cnn):
    model = classifier(small_cnn, 3)
    compile_model(model, "fine_tune", learning_rate=1e-4)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert float(as_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)
    compile_model(model, label_smoothing=0.1)
    assert isinstance(model.loss, SparseCategoricalCrossentropyWithSmoothing)
    assert model.loss.label_smoothing == 0.1


def test_explicit_optimizer_loss_and_metrics_win(small_cnn):
    model = classifier(small_cnn, 3)
    optimizer, loss = keras.optimizers.SGD(0.5), keras.losses.CategoricalCrossentropy()
    compile_model(model, optimizer=optimizer, loss=loss, metrics=[])
    assert model.optimizer is optimizer and model.loss is loss


def _ce(targets, p):
    return float(-(targets * np.log(p)).sum())


def test_label_smoothing_raises_the_loss_of_a_confident_correct_prediction(small_cnn):
    model = classifier(small_cnn, 3)
    compile_model(model)
    plain = model.loss
    compile_model(model, label_smoothing=0.1)
    smoothed = model.loss
    y_true, p = np.array([0]), np.array([[0.98, 0.01, 0.01]], "float32")

    plain_value, smoothed_value = float(as_numpy(plain(y_true, p))), float(as_numpy(smoothed(y_true, p)))

    assert smoothed_value > plain_value
    np.testing.assert_allclose(plain_value, -np.log(0.98), rtol=1e-4)
    targets = 0.9 * np.eye(3)[0] + 0.1 / 3  # (1 - eps) one-hot + eps / classes
    np.testing.assert_allclose(smoothed_value, _ce(targets, p[0]), rtol=1e-4)


def test_label_smoothing_for_two_classes(small_cnn):
    model = classifier(small_cnn, 2)
    compile_model(model, label_smoothing=0.2)
    y_true, p = np.array([[1.0]], "float32"), np.array([[0.99]], "float32")
    value = float(as_numpy(model.loss(y_true, p)))
    expected = _ce(np.array([0.9, 0.1]), np.array([0.99, 0.01]))  # targets 1 - eps/2 and eps/2
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    assert value > -np.log(0.99)


def test_smoothing_loss_serialises():
    loss = SparseCategoricalCrossentropyWithSmoothing(0.2)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SparseCategoricalCrossentropyWithSmoothing) and restored.label_smoothing == 0.2


@pytest.mark.parametrize("classes, has_top5", [(5, False), (6, True), (2, False)])
def test_top5_metric_only_with_more_than_five_classes(small_cnn, tiny_xy, classes, has_top5):
    model = classifier(small_cnn, classes)
    compile_model(model)
    x, y = tiny_xy(4, 32, classes)
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    assert "accuracy" in results
    assert ("top5_accuracy" in results) == has_top5


@pytest.mark.parametrize("has_validation, monitor", [(False, "loss"), (True, "val_loss")])
def test_phase_callbacks_monitor(has_validation, monitor):
    callbacks = phase_callbacks(PRESETS["fine_tune"], has_validation=has_validation)
    stopping = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert len(stopping) == 1
    assert stopping[0].restore_best_weights
    assert stopping[0].monitor == monitor
    assert stopping[0].patience == PRESETS["fine_tune"].patience
    assert stopping[0].mode == "min"
    plateau = [c for c in callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau)]
    assert len(plateau) == 1 and plateau[0].monitor == monitor
    assert any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks)


def test_phase_callbacks_for_an_accuracy_monitor_and_without_plateau():
    preset = get_preset("fine_tune", monitor="val_accuracy", reduce_lr_patience=0)
    callbacks = phase_callbacks(preset, has_validation=False)
    (stopping,) = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert stopping.monitor == "accuracy"
    assert stopping.mode == "max"  # higher is better for accuracy
    assert not any(isinstance(c, keras.callbacks.ReduceLROnPlateau) for c in callbacks)


def test_an_accuracy_is_judged_with_its_loss_breaking_ties():
    def score(accuracy, loss):
        return selection_value({"val_accuracy": accuracy, "val_loss": loss}, "val_accuracy")

    assert score(0.5, 1.0) > score(0.5, 2.0)  # equal accuracy: the lower loss wins
    assert score(0.50001, 100.0) > score(0.5, 0.0)  # a higher accuracy wins whatever the losses (steps > 1e-6)
    assert not score(0.5, float("nan")) > score(0.5, 3.0)  # a NaN loss never compares as better
    assert selection_value({"val_accuracy": 0.5, "val_loss": 1.0}, "val_loss") == 1.0  # a loss monitor: as logged
    assert selection_value({"accuracy": 0.5}, "accuracy") == 0.5  # no loss logged: the accuracy alone


# (val_accuracy, val_loss) per epoch: the lowest loss (epoch 0) is an untrained epoch, the best accuracy is tied
# between epochs 1 and 2, and epoch 2 has the lower loss of the two
EPOCHS = [(0.15, 0.90), (0.45, 1.30), (0.45, 1.10), (0.30, 1.00)]


def test_auto_monitor_restores_a_classifier_s_best_accuracy_epoch(small_cnn, tmp_path):
    model = classifier(small_cnn, 3)
    preset = get_preset("fine_tune", monitor="auto", patience=10)
    (stopping,) = [c for c in phase_callbacks(preset, model=model) if isinstance(c, keras.callbacks.EarlyStopping)]
    (saver,) = run_callbacks(preset, checkpoint_path=str(tmp_path / "best.keras"), model=model)
    assert (stopping.monitor, stopping.mode) == (saver.monitor, saver.mode) == ("val_accuracy", "max")
    for callback in (stopping, saver):
        callback.set_model(model)
        callback.on_train_begin()
    saved = []
    for epoch, (accuracy, loss) in enumerate(EPOCHS):
        before = saver.best
        logs = {"loss": 0.5, "accuracy": 0.9, "val_accuracy": accuracy, "val_loss": loss}
        stopping.on_epoch_end(epoch, logs)
        saver.on_epoch_end(epoch, logs)
        saved.append(saver.best != before)
    assert stopping.best_epoch == 2  # not epoch 0 (the lowest loss) nor 1 (the same accuracy, a higher loss)
    assert saved == [True, True, True, False] and os.path.exists(tmp_path / "best.keras")


def test_auto_monitor_watches_the_loss_of_a_regression_head(small_cnn):
    model = build_model(small_cnn(filters=(4, 4, 4, 4, 4)), "regression", outputs=1, input_size=32, augmentation=None,
                        target_mean=[0.0], target_scale=[1.0])
    preset = get_preset("fine_tune", monitor="auto")
    (stopping,) = [c for c in phase_callbacks(preset, model=model) if isinstance(c, keras.callbacks.EarlyStopping)]
    assert (stopping.monitor, stopping.mode) == ("val_loss", "min")
    (stopping,) = [c for c in phase_callbacks(preset, model=model, has_validation=False)
                   if isinstance(c, keras.callbacks.EarlyStopping)]
    assert stopping.monitor == "loss"


def test_run_callbacks(tmp_path):
    checkpoint = str(tmp_path / "deep" / "folder" / "best.keras")
    callbacks = run_callbacks(PRESETS["fine_tune"], has_validation=False, checkpoint_path=checkpoint,
                              csv_path=str(tmp_path / "log.csv"))
    assert os.path.isdir(tmp_path / "deep" / "folder")
    (saver,) = [c for c in callbacks if isinstance(c, keras.callbacks.ModelCheckpoint)]
    assert saver.save_best_only and saver.monitor == "loss"
    (logger,) = [c for c in callbacks if isinstance(c, keras.callbacks.CSVLogger)]
    assert logger.append
    assert run_callbacks(PRESETS["fine_tune"]) == []


@pytest.mark.parametrize("name, cls", [("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW),
                                       ("sgd", keras.optimizers.SGD), ("rmsprop", keras.optimizers.RMSprop)])
def test_make_optimizer(name, cls):
    optimizer = make_optimizer(get_preset("fine_tune", optimizer=name, learning_rate=0.02))
    assert type(optimizer) is cls
    assert float(as_numpy(optimizer.learning_rate)) == pytest.approx(0.02)
    if name == "sgd":
        assert optimizer.momentum == 0.9
    if name == "adamw":
        assert optimizer.weight_decay == pytest.approx(0.004)
        assert make_optimizer(get_preset("fine_tune", optimizer=name, weight_decay=0.1)).weight_decay == 0.1


def test_every_listed_optimizer_is_made():
    assert {type(make_optimizer(get_preset(optimizer=name))).__name__.lower() for name in OPTIMIZERS} == set(OPTIMIZERS)


def test_make_optimizer_unknown():
    with pytest.raises(KerasTransferError) as info:
        make_optimizer(get_preset(optimizer="lion"))
    message = str(info.value)
    assert "Received: optimizer='lion'" in message and all(name in message for name in OPTIMIZERS)


def test_compile_model_with_an_unknown_preset_field(small_cnn):
    with pytest.raises(KerasTransferError, match="Received: learning_rat=0.1"):
        compile_model(classifier(small_cnn, 3), learning_rat=0.1)


def test_an_optimizer_name_in_compile_model_keeps_the_preset_rate(small_cnn):
    model = classifier(small_cnn, 3)
    try:
        compile_model(model, "fine_tune", optimizer="sgd")
    except KerasTransferError:
        return  # refusing the name is fine too
    assert float(as_numpy(model.optimizer.learning_rate)) == pytest.approx(PRESETS["fine_tune"].learning_rate)
