"""find_lr: the learning-rate range test leaves the model exactly as it was (every variable, the optimizer, the
next `fit`), records a geometric sweep that stops when the loss diverges, and suggests a rate on the curve."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import as_numpy, make_small_cnn, make_tiny_xy
from keras_transfer.errors import KerasTransferError
from keras_transfer.training.lr_finder import LRFinderResult, find_lr, suggest_learning_rate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bn_classifier(optimizer="adam", seed=0):
    """A tiny CNN with a trainable BatchNorm and dropout (its seed state moves each training step), compiled."""
    keras.utils.set_random_seed(seed)
    cnn = make_small_cnn(filters=(4, 4, 4, 4, 4), batchnorm=True)
    x = keras.layers.GlobalAveragePooling2D()(cnn.output)
    x = keras.layers.Dropout(0.5, seed=seed)(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(cnn.input, outputs)
    optimizer = {"adam": lambda: keras.optimizers.Adam(1e-3),
                 "sgd_schedule": lambda: keras.optimizers.SGD(
                     keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.9), momentum=0.9)}[optimizer]()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tiny_data(n=16):
    x, y = make_tiny_xy(n)
    return x / 255.0, y


def snapshot(model):
    """Copies of every model variable (BatchNorm statistics and seed states too), the optimizer's variables
    (its iterations and float learning rate among them) and the metrics' variables."""
    return [(v.path, as_numpy(v).copy())
            for v in [*model.variables, *model.optimizer.variables, *model.metrics_variables]]


def assert_same(before, after):
    assert len(before) == len(after)  # twin models may name their seed generators apart: compared in order
    changed = [path for (path, a), (_, b) in zip(before, after) if not np.array_equal(a, b)]
    assert not changed, f"changed: {changed}"


def fit_one_epoch(model, x, y):
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd_schedule"])
def test_find_lr_leaves_every_variable_and_the_optimizer_unchanged(optimizer):
    model = bn_classifier(optimizer)
    x, y = tiny_data()
    fit_one_epoch(model, x, y)  # the optimizer has momenta and iterations to keep
    compiled_optimizer, config = model.optimizer, model.optimizer.get_config()
    before = snapshot(model)

    result = find_lr(model, (x, y), steps=6, batch_size=8)

    assert len(result.learning_rates) >= 2  # it trained
    assert_same(before, snapshot(model))
    assert model.optimizer is compiled_optimizer
    assert model.optimizer.get_config() == config  # its learning rate too: a float, or the schedule
    # the comparison can fail: a training step moves the BatchNorm statistics and the dropout seed
    model.train_on_batch(x[:8], y[:8])
    moved = {path for (path, a), (_, b) in zip(before, snapshot(model)) if not np.array_equal(a, b)}
    assert any("moving_mean" in path for path in moved) and any("seed" in path for path in moved), moved


def test_after_find_lr_fit_continues_as_if_it_never_ran():
    x, y = tiny_data()
    tested, untouched = bn_classifier("sgd_schedule"), bn_classifier("sgd_schedule")
    fit_one_epoch(tested, x, y)
    fit_one_epoch(untouched, x, y)
    assert_same(snapshot(untouched), snapshot(tested))  # identical twins so far

    find_lr(tested, (x, y), steps=10, batch_size=8, end_learning_rate=1.0)
    fit_one_epoch(tested, x, y)
    fit_one_epoch(untouched, x, y)

    assert_same(snapshot(untouched), snapshot(tested))
    assert int(as_numpy(tested.optimizer.iterations)) == 4  # two epochs of two steps: find_lr's are not counted


def test_an_error_during_the_test_still_restores_the_model(monkeypatch):
    model = bn_classifier()
    x, y = tiny_data()
    fit_one_epoch(model, x, y)
    compiled_optimizer, before = model.optimizer, snapshot(model)
    train_on_batch, calls = model.train_on_batch, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("interrupted")
        return train_on_batch(*args, **kwargs)

    monkeypatch.setattr(model, "train_on_batch", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        find_lr(model, (x, y), steps=10, batch_size=8)
    assert len(calls) == 4
    assert model.optimizer is compiled_optimizer
    assert_same(before, snapshot(model))


def test_learning_rates_grow_geometrically_and_the_losses_are_finite():
    model = bn_classifier()
    result = find_lr(model, tiny_data(), start_learning_rate=1e-6, end_learning_rate=1e-2, steps=9, batch_size=8)

    assert not result.stopped_early
    rates = np.array(result.learning_rates)
    np.testing.assert_allclose(rates, np.geomspace(1e-6, 1e-2, 9), rtol=1e-12)
    assert rates[0] == 1e-6
    np.testing.assert_allclose(rates[1:] / rates[:-1], 10 ** 0.5, rtol=1e-12)
    assert len(result.losses) == len(result.smoothed_losses) == 9
    assert np.all(np.isfinite(result.losses)) and np.all(np.isfinite(result.smoothed_losses))
    assert result.smoothed_losses[0] == pytest.approx(result.losses[0])  # bias-corrected from the first step
    assert result.min_loss_learning_rate in result.learning_rates


def test_the_curve_stops_early_when_the_loss_diverges():
    model = bn_classifier()
    result = find_lr(model, tiny_data(), optimizer=keras.optimizers.SGD(), end_learning_rate=1e8, steps=40,
                     batch_size=8)

    assert result.stopped_early
    assert 2 <= len(result.learning_rates) < 40
    assert np.all(np.isfinite(result.losses))
    assert result.losses[0] < 2.0  # ln(3) ~ 1.1 at the start


def test_a_dataset_is_repeated_to_reach_the_steps():
    x, y = tiny_data(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)  # two batches a pass
    result = find_lr(bn_classifier(), dataset, steps=6, end_learning_rate=1e-2)
    assert len(result.learning_rates) == 6


def test_the_suggestion_lies_on_the_curve_and_the_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is the optional plots extra")
    model = bn_classifier()
    result = find_lr(model, tiny_data(), start_learning_rate=1e-4, end_learning_rate=10.0, steps=20, batch_size=8)

    assert result.suggestion is not None
    assert min(result.learning_rates) <= result.suggestion <= max(result.learning_rates)
    assert result.suggestion in result.learning_rates
    path = result.plot(str(tmp_path / "lr.png"))
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert result.as_dict()["suggestion"] == result.suggestion
    assert set(result.as_dict()) >= {"learning_rates", "losses", "smoothed_losses", "min_loss_learning_rate"}


@pytest.mark.backend_free
def test_the_suggestion_is_the_steepest_descent_before_the_minimum():
    rates = list(np.geomspace(1e-5, 1.0, 11))
    #         skipped  flat         steep at 1e-2        minimum  rising (steeper, but after the minimum)
    losses = [9.0,     2.0, 2.0, 1.9, 1.8, 1.0, 0.9, 0.85, 0.8, 3.0, 9.0]
    assert suggest_learning_rate(rates, losses) == rates[4]
    assert suggest_learning_rate(rates[:4], losses[:4]) is None  # too short
    assert suggest_learning_rate(rates, sorted(losses)) is None  # never falls


@pytest.mark.backend_free
def test_without_matplotlib_plot_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] or ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    result = LRFinderResult([1e-3, 1e-2], [1.0, 0.9], [1.0, 0.95], None, 1e-2)
    with pytest.raises(KerasTransferError, match=r"keras-transfer\[plots\]"):
        result.plot(str(tmp_path / "lr.png"))
    assert not (tmp_path / "lr.png").exists()


@pytest.mark.parametrize("kwargs, received", [
    ({"steps": 1}, "steps=1"),
    ({"steps": 2.5}, "steps=2.5"),
    ({"start_learning_rate": 1.0, "end_learning_rate": 1.0}, "start_learning_rate=1.0, end_learning_rate=1.0"),
    ({"start_learning_rate": 0.0}, "start_learning_rate=0.0"),
    ({"end_learning_rate": -1.0, "start_learning_rate": -2.0}, "start_learning_rate=-2.0"),
    ({"end_learning_rate": float("inf")}, "end_learning_rate=inf"),
    ({"smoothing": 1.0}, "smoothing=1.0"),
    ({"divergence": 1.0}, "divergence=1.0"),
    ({"batch_size": 0}, "batch_size=0"),
])
def test_bad_arguments_raise_one_line_errors(kwargs, received):
    model = bn_classifier()
    before = snapshot(model)
    with pytest.raises(KerasTransferError) as error:
        find_lr(model, tiny_data(), **kwargs)
    message = str(error.value)
    assert "\n" not in message and message.endswith(f"Received: {received}"), message
    assert_same(before, snapshot(model))


def test_bad_training_data_raises():
    model = bn_classifier()
    x, y = tiny_data()
    with pytest.raises(KerasTransferError, match=r"Received: len\(x\)=16, len\(y\)=15"):
        find_lr(model, (x, y[:-1]))
    with pytest.raises(KerasTransferError, match="Received: train=ndarray"):
        find_lr(model, x)
    with pytest.raises(KerasTransferError, match="Received: batch_size=4"):
        find_lr(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4), batch_size=4)
    before = snapshot(model)
    with pytest.raises(KerasTransferError, match="no batches"):
        find_lr(model, tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(4))
    assert_same(before, snapshot(model))


def test_an_uncompiled_model_raises():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(KerasTransferError, match="compile") as error:
        find_lr(model, (np.zeros((4, 4)), np.zeros(4)))
    assert "\n" not in str(error.value)
