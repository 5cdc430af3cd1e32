"""Layer-wise learning rates and schedules: the step each block takes, freezing by a zero multiplier, weight
decay, save/load of the optimizer and its schedule, mixed precision, and the bad-input paths."""

import keras
import numpy as np
import pytest
from conftest import as_numpy, make_tiny_xy, randomize_head

from keras_transfer import build_classifier
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.freezing import freeze
from keras_transfer.training.optimizers import (LayerwiseAdam, LayerwiseAdamW, LayerwiseRMSprop, LayerwiseSGD,
                                                block_multipliers, make_optimizer, multiplier_for)
from keras_transfer.training.schedules import SCHEDULES, OneCycle, WarmupCosine, make_schedule

LOSS = "sparse_categorical_crossentropy"
# The small CNN's blocks, top first (see conftest.make_small_cnn), with the head above them.
BLOCKS = {"head": ("predictions",), "stage3": ("conv_d", "conv_e"), "stage2": ("conv_c",),
          "stage1": ("conv_a", "conv_b")}


def classifier(small_cnn, *, precision=None):
    """A small-CNN classifier with every layer trainable, no dropout, and a random head (so gradients reach
    the backbone)."""
    model = build_classifier(small_cnn(), 3, augmentation=None, dropout=0, precision=precision)
    freeze(model, "full")
    randomize_head(model)
    return model


def weights_of(model):
    return {v.path: as_numpy(v) for v in model.trainable_variables}


def one_step(model, optimizer, start):
    """Sets the weights to `start`, trains one batch with a fresh `optimizer`; returns `{path: delta}`. (Eager:
    compiling costs more than one tiny step; the compiled path is tested by the save/load test.)"""
    for v in model.trainable_variables:
        v.assign(start[v.path])
    model.compile(optimizer=optimizer, loss=LOSS, run_eagerly=True)
    x, y = make_tiny_xy(4)
    model.train_on_batch(x, y)
    return {path: value - start[path] for path, value in weights_of(model).items()}


def block_of(path):
    layer = path.split("/")[0]
    return next(block for block, layers in BLOCKS.items() if layer in layers)


def per_block(deltas, reduce):
    """`{block: reduce(concatenated values of the block's variables)}`."""
    groups = {}
    for path, delta in deltas.items():
        groups.setdefault(block_of(path), []).append(np.ravel(delta))
    return {block: reduce(np.concatenate(parts)) for block, parts in groups.items()}


def test_block_multipliers_decay_from_the_head_down(small_cnn):
    multipliers = block_multipliers(classifier(small_cnn), 0.5, head=2.0)
    expected = {"head": 2.0, "stage3": 1.0, "stage2": 0.5, "stage1": 0.25}
    for block, layers in BLOCKS.items():
        assert all(multipliers[name] == expected[block] for name in layers), (block, multipliers)


def test_variable_paths_name_the_inner_layer(small_cnn):
    """The optimizer matches variables by path: a nested backbone's weights carry their own layer's name."""
    model = classifier(small_cnn)
    assert {v.path for v in model.trainable_variables} >= {"conv_a/kernel", "conv_e/bias", "predictions/kernel"}
    assert multiplier_for("backbone/conv_a/kernel", {"backbone": 0.1, "conv_a": 0.5}) == 0.5
    assert multiplier_for("backbone/conv_b/kernel", {"backbone": 0.1, "conv_a": 0.5}) == 0.1
    assert multiplier_for("kernel", {"kernel": 0.5}) == 1.0


def test_adam_steps_follow_the_block_ratios(small_cnn):
    """Adam's first step is lr * sign(gradient) per element: its size is the layer's scaled rate. Scaling
    gradients would change nothing here; scaling the rate does. Plain Adam (the control) moves every block
    by the same amount."""
    model, lr = classifier(small_cnn), 1e-3
    start = weights_of(model)
    multipliers = block_multipliers(model, 0.5)
    layerwise = per_block(one_step(model, LayerwiseAdam(lr, multipliers=multipliers, epsilon=1e-12), start),
                          lambda d: np.median(np.abs(d)) / lr)
    plain = per_block(one_step(model, keras.optimizers.Adam(lr, epsilon=1e-12), start),
                      lambda d: np.median(np.abs(d)) / lr)
    expected = {"head": 1.0, "stage3": 0.5, "stage2": 0.25, "stage1": 0.125}
    for block, value in expected.items():
        assert layerwise[block] == pytest.approx(value, rel=0.03), layerwise
        assert plain[block] == pytest.approx(1.0, rel=0.03), plain


def test_sgd_step_is_the_scaled_rate_times_the_gradient(small_cnn):
    """SGD without momentum: the layer-wise step equals the multiplier times plain SGD's step (-lr * gradient),
    element by element."""
    model, lr = classifier(small_cnn), 0.05
    start = weights_of(model)
    multipliers = block_multipliers(model, 0.3)
    layerwise = one_step(model, LayerwiseSGD(lr, multipliers=multipliers), start)
    plain = one_step(model, keras.optimizers.SGD(lr), start)
    for path, delta in layerwise.items():
        multiplier = multiplier_for(path, multipliers)
        assert np.abs(plain[path]).max() > 0, path
        atol = 1e-6 * np.abs(start[path]).max()  # the rounding of w + delta
        np.testing.assert_allclose(delta, multiplier * plain[path], rtol=1e-3, atol=atol)
    ratios = per_block({p: np.abs(d) for p, d in layerwise.items()}, np.sum)
    totals = per_block({p: np.abs(d) for p, d in plain.items()}, np.sum)
    for block, value in {"head": 1.0, "stage3": 0.3, "stage2": 0.09, "stage1": 0.027}.items():
        assert ratios[block] / totals[block] == pytest.approx(value, rel=1e-3)


@pytest.mark.parametrize("make", [lambda m: LayerwiseAdamW(1e-2, multipliers=m, weight_decay=0.1),
                                  lambda m: LayerwiseSGD(1e-2, multipliers=m, momentum=0.9),
                                  lambda m: LayerwiseRMSprop(1e-2, multipliers=m)], ids=["adamw", "sgd", "rmsprop"])
def test_zero_multiplier_freezes_a_layer(small_cnn, make):
    model = classifier(small_cnn)
    start = weights_of(model)
    deltas = one_step(model, make({"conv_a": 0.0, "conv_c": 0.5}), start)
    assert not np.any(deltas["conv_a/kernel"]) and not np.any(deltas["conv_a/bias"])
    assert np.any(deltas["conv_b/kernel"]) and np.any(deltas["conv_c/kernel"])


def test_weight_decay_is_scaled_by_the_multiplier(small_cnn):
    """Decoupled decay takes lr * multiplier * weight_decay * w (as timm's layer decay): the difference between
    a decayed and an undecayed step, from the same weights and gradients."""
    model, lr, wd = classifier(small_cnn), 0.1, 0.5
    start = weights_of(model)
    multipliers = {"conv_a": 0.2, "conv_c": 0.0}
    decayed = one_step(model, LayerwiseSGD(lr, multipliers=multipliers, weight_decay=wd), start)
    undecayed = one_step(model, LayerwiseSGD(lr, multipliers=multipliers), start)
    for path in ("conv_a/kernel", "conv_b/kernel", "conv_c/kernel"):
        expected = -lr * multiplier_for(path, multipliers) * wd * start[path]
        np.testing.assert_allclose(decayed[path] - undecayed[path], expected, rtol=1e-3, atol=1e-7)


def test_unmatched_multipliers_warn(small_cnn):
    model = classifier(small_cnn)
    with pytest.warns(UserWarning, match="no trainable variable"):
        LayerwiseAdam(1e-3, multipliers={"conv_zz": 0.5}).build(model.trainable_variables)


def test_config_round_trip():
    schedule = WarmupCosine(1e-3, 50, warmup_steps=5)
    optimizer = LayerwiseAdamW(schedule, multipliers={"conv_a": 0.25}, weight_decay=0.01, beta_1=0.8)
    config = optimizer.get_config()
    assert config["multipliers"] == {"conv_a": 0.25}
    restored = LayerwiseAdamW.from_config(config)
    assert restored.multipliers == {"conv_a": 0.25} and restored.beta_1 == 0.8 and restored.weight_decay == 0.01
    assert isinstance(restored._learning_rate, WarmupCosine)
    assert restored._learning_rate.get_config() == schedule.get_config()
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert type(copy) is LayerwiseAdamW and copy.multipliers == {"conv_a": 0.25}


def test_saved_model_keeps_multipliers_and_schedule(small_cnn, tmp_path):
    model = classifier(small_cnn)
    multipliers = block_multipliers(model, 0.5)
    schedule = OneCycle(1e-3, 20, pct_start=0.3)
    model.compile(optimizer=make_optimizer("adamw", schedule, multipliers=multipliers), loss=LOSS)
    x, y = make_tiny_xy(4)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    optimizer = loaded.optimizer
    assert type(optimizer) is LayerwiseAdamW and optimizer.multipliers == multipliers
    assert optimizer._learning_rate.get_config() == schedule.get_config()
    assert int(as_numpy(optimizer.iterations)) == 2
    assert optimizer.multipliers_by_variable() == model.optimizer.multipliers_by_variable()
    assert optimizer.multipliers_by_variable()["conv_a/kernel"] == 0.125
    loaded.fit(x, y, epochs=1, batch_size=2, verbose=0)  # keeps training from the restored state


def test_loss_scale_optimizer_wraps_a_layerwise_one(small_cnn):
    model = classifier(small_cnn, precision="mixed_float16")
    start = weights_of(model)
    optimizer = keras.optimizers.LossScaleOptimizer(LayerwiseAdam(1e-3, multipliers={"conv_a": 0.0}))
    deltas = one_step(model, optimizer, start)
    assert not np.any(deltas["conv_a/kernel"]) and np.any(deltas["conv_b/kernel"])


def test_make_optimizer_plain_and_layerwise():
    assert type(make_optimizer("adam", 1e-3)) is keras.optimizers.Adam
    assert make_optimizer("adamw", 1e-3).weight_decay == 0.004
    sgd = make_optimizer("sgd", 1e-2)
    assert type(sgd) is keras.optimizers.SGD and sgd.momentum == 0.9
    assert type(make_optimizer("rmsprop", 1e-3)) is keras.optimizers.RMSprop
    layerwise = make_optimizer("sgd", 1e-2, multipliers={"conv_a": 0.5}, weight_decay=1e-4)
    assert type(layerwise) is LayerwiseSGD and layerwise.momentum == 0.9 and layerwise.weight_decay == 1e-4
    assert type(make_optimizer("adamw", 1e-3, multipliers={})) is LayerwiseAdamW


def test_warmup_cosine_values():
    schedule = WarmupCosine(1e-3, 110, warmup_steps=10, final_learning_rate=1e-5)

    def value(step):
        return float(as_numpy(schedule(step)))

    assert value(0) == pytest.approx(1e-4, rel=1e-5)  # first warmup step: peak / warmup_steps, never 0
    assert value(9) == pytest.approx(1e-3, rel=1e-5)  # end of warmup: the peak
    assert value(10) == pytest.approx(1e-3, rel=1e-5)
    assert value(60) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-4)  # half-way through the decay
    assert value(110) == pytest.approx(1e-5, rel=1e-5) and value(500) == pytest.approx(1e-5, rel=1e-5)
    no_warmup = WarmupCosine(1e-3, 10)
    assert float(as_numpy(no_warmup(0))) == pytest.approx(1e-3, rel=1e-5)


def test_one_cycle_values():
    schedule = OneCycle(1e-2, 100, pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
    values = np.array([float(as_numpy(schedule(step))) for step in range(0, 121)])
    assert values[0] == pytest.approx(1e-2 / 25, rel=1e-5)
    assert int(np.argmax(values)) == 30 and values[30] == pytest.approx(1e-2, rel=1e-5)
    assert values[15] == pytest.approx((1e-2 + 4e-4) / 2, rel=1e-4)
    assert values[65] == pytest.approx((1e-2 + 4e-8) / 2, rel=1e-4)
    assert values[100] == pytest.approx(4e-8, rel=1e-5) and values[120] == pytest.approx(4e-8, rel=1e-5)


@pytest.mark.parametrize("schedule", [WarmupCosine(1e-3, 50, warmup_steps=5, final_learning_rate=1e-6),
                                      OneCycle(1e-2, 40, pct_start=0.4, div_factor=10.0)], ids=["cosine", "one_cycle"])
def test_schedule_serialisation_round_trip(schedule):
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(copy) is type(schedule) and copy.get_config() == schedule.get_config()
    for step in (0, 7, 30, 60):
        assert float(as_numpy(copy(step))) == float(as_numpy(schedule(step)))


def test_make_schedule_kinds():
    assert make_schedule("constant", 1e-3, 10) == 1e-3
    cosine = make_schedule("cosine", 1e-3, 100, warmup_steps=10)
    assert isinstance(cosine, WarmupCosine) and cosine.get_config()["warmup_steps"] == 10
    assert make_schedule("one_cycle", 1e-3, 100).pct_start == 0.25
    assert make_schedule("one_cycle", 1e-3, 100, warmup_steps=40).pct_start == 0.4
    assert set(SCHEDULES) == {"constant", "cosine", "one_cycle"}


@pytest.mark.parametrize("call, received", [
    (lambda: make_schedule("cosin", 1e-3, 10), "schedule='cosin'"),
    (lambda: make_schedule("cosine", 1e-3, 0), "total_steps=0"),
    (lambda: make_schedule("cosine", 1e-3, 10, warmup_steps=-1), "warmup_steps=-1"),
    (lambda: make_schedule("cosine", 1e-3, 10, warmup_steps=11), "warmup_steps=11"),
    (lambda: make_schedule("one_cycle", 1e-3, 10, warmup_steps=10), "warmup_steps=10"),
    (lambda: make_schedule("constant", -1.0, 10), "learning_rate=-1.0"),
    (lambda: WarmupCosine(1e-3, 2.5), "total_steps=2.5"),
    (lambda: OneCycle(1e-3, 10, pct_start=1.0), "pct_start=1.0"),
    (lambda: make_optimizer("adan", 1e-3), "optimizer='adan'"),
    (lambda: make_optimizer("adam", 1e-3, multipliers={"conv_a": -0.5}), "multipliers['conv_a']=-0.5"),
    (lambda: LayerwiseAdam(1e-3, multipliers=[("conv_a", 0.5)]), "multipliers=[('conv_a', 0.5)]"),
], ids=["kind", "total", "negative_warmup", "long_warmup", "one_cycle_warmup", "rate", "float_steps", "pct_start",
        "optimizer", "negative_multiplier", "not_a_dict"])
def test_bad_arguments_raise_one_line(call, received):
    with pytest.raises(KerasTransferError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message.endswith(f"Received: {received}"), message


@pytest.mark.parametrize("decay", [0, 1.5, -0.5, "0.5"])
def test_block_multipliers_bad_decay(small_cnn, decay):
    model = classifier(small_cnn)
    with pytest.raises(KerasTransferError, match=r"decay must be a number in \(0, 1\]\. Received: decay="):
        block_multipliers(model, decay)


def test_unknown_schedule_suggests_the_closest():
    with pytest.raises(KerasTransferError, match="Did you mean 'cosine'"):
        make_schedule("cosin", 1e-3, 10)
