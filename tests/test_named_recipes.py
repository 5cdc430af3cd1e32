"""The named recipes: step budgets, the converged head (linear probe), LP-FT's keep-the-better rule, gradual
unfreezing with one optimizer, scratch training with BatchNorm, and `auto`'s choice."""

import keras
import numpy as np
import pytest
from conftest import as_numpy

from keras_transfer import build_classifier
from keras_transfer.errors import KerasTransferError
from keras_transfer.training.budget import DataSize, batch_for, budget
from keras_transfer.training.batches import numpy_batches
from keras_transfer.training.linear_probe import features_of, fit_linear_head, shifted_views, takes_views
from keras_transfer.training.presets import get_preset, phase_callbacks
from keras_transfer.training.recipes import RecipeOptions, plan_recipe, run_recipe

CLASSES = ["a", "b", "c"]


def _separable(n=24, size=32, classes=3, seed=0):
    """Images whose class is their brightness band: separable by any reasonable feature."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype("int32")
    x = rng.uniform(0, 40, size=(n, size, size, 3)).astype("float32") + (y * 100)[:, None, None, None]
    return x, y


# Plans: backend-free arithmetic.

@pytest.mark.backend_free
def test_tiny_data_caps_the_batch_and_raises_the_epochs_to_the_step_minimum():
    preset = budget(get_preset("fine_tune"), DataSize(images=30, classes=3), min_steps=200)
    assert preset.batch_size == 7 and preset.steps_per_epoch == 5  # at least 4 steps an epoch
    assert preset.epochs == 40 and preset.epochs * preset.steps_per_epoch >= 200
    assert "raised from 10 epochs" in preset.budget_reason


@pytest.mark.backend_free
def test_given_epochs_and_batch_are_kept_and_large_data_keeps_the_preset():
    given = budget(get_preset("fine_tune"), DataSize(images=30, classes=3), epochs=2, batch_size=8, min_steps=200)
    assert (given.epochs, given.batch_size, given.steps_per_epoch) == (2, 8, 4)
    assert given.budget_reason == "2 epochs as given"
    large = budget(get_preset("fine_tune"), DataSize(images=10_000, classes=3), min_steps=200)
    assert (large.epochs, large.batch_size) == (10, 32)
    assert batch_for(3) == 1 and batch_for(1000) == 32 and batch_for(1000, 5) == 5
    assert batch_for(12, largest=16) == 3 and batch_for(1000, largest=16) == 16  # texts: batches of at most 16


@pytest.mark.backend_free
def test_early_stopping_cannot_end_a_phase_before_its_warmup_and_minimum():
    preset = budget(get_preset("fine_tune", schedule="cosine", warmup=0.5), DataSize(images=40, classes=2),
                    min_steps=30)  # batch 10, 4 steps an epoch, 10 epochs: 40 steps, warmup 20
    stopping = next(c for c in phase_callbacks(preset, initial_epoch=3) if isinstance(c, keras.callbacks.EarlyStopping))
    assert stopping.min_epoch == 3 + 8  # ceil(max(30 steps, 20 warmup) / 4 per epoch) after the phase's start
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stopping.set_model(model)
    model.stop_training = False  # fit sets it
    stopping.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.5, 2.0, 2.0, 2.0, 2.0, 2.0], start=3):  # patience 3 ran out at epoch 7
        stopping.on_epoch_end(epoch, {"val_loss": loss})
        assert not model.stop_training, epoch  # epochs 3..9 end inside the budget: never stopped ...
    assert stopping.best_epoch == 4 and stopping.best == 0.5  # ... yet every one of them was watched
    stopping.on_epoch_end(10, {"val_loss": 2.0})  # the 8th epoch of the phase: the budget is spent
    assert model.stop_training and stopping.stopped_epoch == 10
    kinds = {type(c) for c in phase_callbacks(preset)}
    assert keras.callbacks.ReduceLROnPlateau not in kinds  # a schedule owns the rate
    assert keras.callbacks.ReduceLROnPlateau in {type(c) for c in phase_callbacks(get_preset("fine_tune"))}


@pytest.mark.backend_free
@pytest.mark.parametrize("pretrained, strategy, images, expected, phases", [
    (True, "top_blocks", 300, "lp_ft", ["head", "fine_tune"]),
    (True, "top_blocks", 57, "lp_ft", ["head", "fine_tune"]),  # 19 a class: fine-tuning, kept if it pays
    (True, "top_blocks", 9, "lp_ft", ["head", "fine_tune"]),  # 3 a class: still
    (True, "top_blocks", 8, "lp_ft", ["head"]),  # under 3 a class: the converged head alone
    (True, "head_only", 300, "lp_ft", ["head"]),
    (True, "gradual", 300, "gradual", ["head", "fine_tune_1", "fine_tune_2"]),
    (True, "top_blocks", 50_000, "two_phase", ["head", "fine_tune"]),
    (False, "top_blocks", 300, "scratch", ["scratch"]),
])
def test_auto_picks_by_the_data_and_says_why(pretrained, strategy, images, expected, phases):
    name, planned, why = plan_recipe("auto", DataSize(images=images, classes=3), RecipeOptions(strategy=strategy),
                                     pretrained=pretrained)
    assert name == expected and [phase for phase, _ in planned] == phases
    assert why[0].startswith(f"recipe 'auto' -> '{expected}': ") and len(why) == 1 + len(phases)
    if not pretrained:
        assert all(preset.train_batchnorm for _, preset in planned)


@pytest.mark.backend_free
def test_gradual_stages_share_one_optimizer_and_one_schedule():
    _, planned, _ = plan_recipe("gradual", DataSize(images=100, classes=4), RecipeOptions(n=3))
    stages = [preset for name, preset in planned if name.startswith("fine_tune")]
    assert [s.n for s in stages] == [1, 2, 3]
    assert [s.keep_optimizer for s in stages] == [False, True, True]
    total = sum(s.epochs * s.steps_per_epoch for s in stages)
    assert {s.schedule_steps for s in stages} == {total}


@pytest.mark.backend_free
def test_unknown_recipe_and_strategy_are_one_line_errors():
    with pytest.raises(KerasTransferError, match="Unknown recipe 'lpft'.*lp_ft"):
        plan_recipe("lpft", DataSize(images=10, classes=2))
    with pytest.raises(KerasTransferError, match="strategy"):
        plan_recipe("auto", DataSize(images=10, classes=2), RecipeOptions(strategy="top"))


# Training.

def test_the_linear_probe_is_the_converged_regression_and_the_model_predicts_it():
    sklearn = pytest.importorskip("sklearn.linear_model", reason="scikit-learn (the demo extra) gives the reference")
    keras.utils.set_random_seed(0)
    model = build_classifier("tinyvgg", 3, weights=None, input_size=32, augmentation=None, class_names=CLASSES)
    x, y = _separable(30)
    probe = fit_linear_head(model, (x[:18], y[:18]), (x[18:], y[18:]))
    assert probe.l2 in probe.validation and probe.iterations > 0 and len(probe.validation) == 7
    best = max(probe.validation.values(), key=lambda score: (score[0], -score[1]))  # best accuracy, then lower loss
    assert probe.validation[probe.l2] == best
    features, _ = features_of(model, (x, y))
    mean, std = features[:18].mean(0), features[:18].std(0)
    std[std < 1e-12] = 1.0
    # scikit-learn's objective: C * sum(losses) + |W|^2 / 2 = n * C * (mean loss + |W|^2 / (2 n C)): C = 1 / (n l2)
    reference = sklearn.LogisticRegression(C=1.0 / (18 * probe.l2), max_iter=10_000, tol=1e-10)
    reference.fit((features[:18] - mean) / std, y[:18])
    expected = reference.predict_proba((features - mean) / std)
    assert np.allclose(as_numpy(model.predict(x, verbose=0)), expected, atol=2e-3)


def test_the_linear_probe_fits_a_one_unit_sigmoid_head():
    keras.utils.set_random_seed(0)
    model = build_classifier("tinyvgg", 2, weights=None, input_size=32, augmentation=None)
    x, y = _separable(16, classes=2)
    probe = fit_linear_head(model, (x, y), l2=1e-3)
    assert probe.accuracy == 1.0 and probe.validation == {}
    assert np.mean((as_numpy(model.predict(x, verbose=0))[:, 0] > 0.5) == y) == 1.0


@pytest.mark.backend_free
def test_shifted_views_move_each_image_by_at_most_a_tenth_reflecting_the_border():
    image = np.arange(20 * 20, dtype="float32").reshape(1, 20, 20, 1)  # every pixel value unique
    views = shifted_views(np.repeat(image, 50, 0), np.random.default_rng(0))
    assert views.shape == (50, 20, 20, 1)
    offsets = set()
    for view in views:  # the centre pixel (10, 10) came from (10 + dy, 10 + dx) with |dy|, |dx| <= 2
        source = np.argwhere(image[0, :, :, 0] == view[10, 10, 0])[0]
        offsets.add(tuple(source - 10))
        assert np.array_equal(view[2:18, 2:18], image[0, 2 + source[0] - 10:18 + source[0] - 10,
                                                      2 + source[1] - 10:18 + source[1] - 10])
    assert max(max(abs(dy), abs(dx)) for dy, dx in offsets) == 2 and len(offsets) > 10


@pytest.mark.backend_free
def test_only_image_batches_get_views_and_dict_inputs_are_batched_per_key():
    images, labels = np.zeros((5, 8, 8, 3)), np.arange(5)
    tokens = {"token_ids": np.ones((5, 16), "int32"), "padding_mask": np.ones((5, 16), bool)}
    assert takes_views((images, labels)) and not takes_views((tokens, labels))
    assert not takes_views((np.zeros((5, 64)), labels))  # features
    batches = list(numpy_batches((tokens, labels), 2))
    assert [len(y) for _, y in batches] == [2, 2, 1] and batches[2][0]["token_ids"].shape == (1, 16)


def test_the_probe_adds_shifted_views_to_its_training_features_only():
    keras.utils.set_random_seed(0)
    model = build_classifier("tinyvgg", 3, weights=None, input_size=32, augmentation=None, class_names=CLASSES)
    x, y = _separable(12)
    features, labels = features_of(model, (x, y), views=2, seed=1)
    assert features.shape[0] == 36 and np.array_equal(labels, np.tile(y, 3))
    plain, _ = features_of(model, (x, y))
    assert np.allclose(features[:12], plain) and not np.allclose(features[12:24], plain)
    again, _ = features_of(model, (x, y), views=2, seed=1)
    assert np.array_equal(again, features)  # seeded
    probe = fit_linear_head(model, (x, y), (x, y), views=2)
    assert probe.accuracy == 1.0 and probe.val_accuracy == 1.0
    name, phases, why = plan_recipe("auto", DataSize(images=30, classes=3))
    assert phases[0][1].views == 8 and "8 shifted views" in why[1]
    assert plan_recipe("lp_ft", DataSize(images=5000, classes=3))[1][0][1].views == 0  # big data: the images alone


def test_lp_ft_keeps_the_probe_when_fine_tuning_does_worse_on_validation():
    keras.utils.set_random_seed(0)
    model = build_classifier("tinyvgg", 3, weights=None, input_size=32, augmentation=None, class_names=CLASSES)
    x, y = _separable(24)
    options = RecipeOptions(n=1, fine_tune_epochs=2, fine_tune_learning_rate=5.0, layer_decay=1.0)  # diverges
    result = run_recipe(model, (x[:12], y[:12]), (x[12:], y[12:]), recipe="lp_ft", options=options, verbose=0)
    assert result.recipe == "lp_ft" and result.phases == ["head", "fine_tune"]
    probe = result.histories[0].probe
    assert getattr(result.histories[1], "kept_start", False)
    logs = model.evaluate(x[12:], y[12:], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(probe.val_loss, rel=1e-2, abs=1e-4)  # the probe's head, backbone untouched


def test_lp_ft_on_a_dataset_needs_its_size_when_unknown(tiny_xy):
    import tensorflow as tf

    model = build_classifier("tinyvgg", 3, weights=None, input_size=32, augmentation=None)
    x, y = tiny_xy(6, 32, 3)
    unknown = tf.data.Dataset.from_tensor_slices((x, y)).batch(3).filter(lambda a, b: True)
    with pytest.raises(KerasTransferError, match="pass num_examples= for a dataset of unknown size"):
        run_recipe(model, unknown, recipe="lp_ft", verbose=0)
    with pytest.warns(DeprecationWarning, match="num_images= is deprecated"), \
            pytest.raises(KerasTransferError, match=r"num_examples=5, num_images=6"):
        run_recipe(model, unknown, recipe="lp_ft", num_examples=5, num_images=6, verbose=0)
    result = run_recipe(model, unknown, recipe="lp_ft", num_examples=6, options=RecipeOptions(fine_tune_epochs=1),
                        verbose=0)
    assert result.phases == ["head", "fine_tune"] and len(result.histories[1].epoch) == 1


@pytest.mark.backend_free
def test_num_images_is_the_deprecated_name_of_num_examples():
    from keras_transfer.training.recipes import _num_examples

    assert _num_examples(6, None) == 6 and _num_examples(None, None) is None
    with pytest.warns(DeprecationWarning, match="pass num_examples="):
        assert _num_examples(None, 6) == 6
    with pytest.warns(DeprecationWarning):
        assert _num_examples(6, 6) == 6


def _batchnorm_statistics(model):
    backbone = model.get_layer("backbone")
    return [as_numpy(w) for layer in backbone._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization) for w in (layer.moving_mean, layer.moving_variance)]


class _Watch(keras.callbacks.Callback):
    """Records, at the start of every fit: the optimizer step, the trainable weights, the trainable BatchNorm
    layers, and how many optimizer slots hold what the last fit's optimizer ended with (by name)."""

    def __init__(self):
        super().__init__()
        self.seen, self.ended = [], {}

    def _slots(self):
        return {v.name: as_numpy(v) for v in self.model.optimizer.variables if v.name != "iteration"}

    def on_train_begin(self, logs=None):
        backbone = self.model.get_layer("backbone")
        bn = sum(layer.trainable for layer in backbone._flatten_layers(include_self=False)
                 if isinstance(layer, keras.layers.BatchNormalization))
        slots = self._slots()
        common = [name for name in slots if name in self.ended]
        same = [name for name in common if np.array_equal(slots[name], self.ended[name])]
        carried = (len(common), len(same), sum(bool(np.any(slots[name] != 0)) for name in same))
        self.seen.append((int(as_numpy(self.model.optimizer.iterations)), len(self.model.trainable_weights), bn,
                          carried))

    def on_train_end(self, logs=None):
        self.ended = self._slots()


def test_gradual_unfreezing_raises_the_trainable_count_at_the_planned_steps_keeping_the_optimizer(tiny_xy):
    keras.utils.set_random_seed(0)
    # tinybn (tests/tiny_backbone.py): three blocks with BatchNorm layers to keep frozen
    model = build_classifier("tinybn", 3, weights=None, input_size=32, augmentation=None, class_names=CLASSES)
    x, y = tiny_xy(12, 32, 3)
    statistics = _batchnorm_statistics(model)
    watch = _Watch()
    options = RecipeOptions(n=3, fine_tune_epochs=1, batch_size=4)
    result = run_recipe(model, (x, y), recipe="gradual", options=options, callbacks=[watch], verbose=0)
    assert result.phases == ["head", "fine_tune_1", "fine_tune_2", "fine_tune_3"]
    steps, counts, batchnorm, carried = zip(*watch.seen[1:])  # [0]: the probe's (no steps)
    assert steps == (0, 3, 6)  # each stage starts where the last one stopped: 3 steps a stage, one schedule
    assert counts[0] < counts[1] < counts[2]
    assert [r.trainable_weights_after for r in result.freeze_reports[1:]] == list(counts)
    assert carried[0][2] == 0  # the first stage starts fresh (its slots are zeros)
    for (common, same, moved), before in zip(carried[1:], counts):  # Adam's m and v of every weight already training
        assert common == same >= 2 * before and moved > 0  # ... carried over as they were, not fresh zeros
    assert batchnorm == (0, 0, 0)  # pretrained (the default): BatchNorm stays in inference mode ...
    for before, after in zip(statistics, _batchnorm_statistics(model)):
        np.testing.assert_array_equal(before, after)  # ... and its statistics do not move


def test_scratch_trains_every_layer_and_batchnorm():
    """The plumbing, on one epoch of tinybn (tests/tiny_backbone.py: three conv + BatchNorm blocks); whether 12
    epochs of MobileNetV2 learn the separable task is measured by benchmarks/scratch_learns.py (a quality
    measurement, not a test)."""
    keras.utils.set_random_seed(0)
    model = build_classifier("tinybn", 2, weights=None, input_size=32, augmentation=None)
    x, y = _separable(32, classes=2)
    statistics, kernels = _batchnorm_statistics(model), [as_numpy(w) for w in model.trainable_weights]
    options = RecipeOptions(fine_tune_epochs=1, batch_size=8, fine_tune_learning_rate=1e-3)
    result = run_recipe(model, (x, y), recipe="auto", pretrained=False, options=options, verbose=0)
    assert result.recipe == "scratch" and "BatchNorm included" in result.plan[0]
    moved = [not np.allclose(a, b) for a, b in zip(statistics, _batchnorm_statistics(model))]
    assert all(moved)
    assert all(not np.allclose(a, as_numpy(b)) for a, b in zip(kernels, model.trainable_weights))  # every layer
    probabilities = as_numpy(model.predict(x, verbose=0))
    assert probabilities.shape == (32, 1) and np.all((probabilities >= 0) & (probabilities <= 1))  # a sigmoid


def test_scratch_keeps_the_epoch_of_best_validation_accuracy():
    """The restored weights score the best validation accuracy any epoch logged (the loss breaking ties), not the
    lowest validation loss: a from-scratch network's lowest-loss epoch can be an untrained one (issue 25). Here the
    accuracy ties across epochs, so the loss decides (a float32 comparison of the two would not see it)."""
    (_, preset), = plan_recipe("scratch", DataSize(images=24, classes=3), pretrained=False)[1]
    assert preset.monitor == "auto"  # val_accuracy for a classifier (tests/test_presets.py)
    keras.utils.set_random_seed(0)
    model = build_classifier("tinybn", 3, weights=None, input_size=32, augmentation=None)
    train, (x_val, y_val) = _separable(24), _separable(12, seed=1)
    val = x_val, np.where(np.arange(12) < 4, (y_val + 1) % 3, y_val)  # a third mislabelled: confidence costs loss
    options = RecipeOptions(fine_tune_epochs=8, batch_size=8, fine_tune_learning_rate=1e-2)
    result = run_recipe(model, train, val, recipe="scratch", pretrained=False, options=options, verbose=0)
    history = result.histories[0].history
    accuracy, loss = np.array(history["val_accuracy"]), np.array(history["val_loss"])
    best = max(range(len(accuracy)), key=lambda e: (accuracy[e], -loss[e]))
    logs = model.evaluate(*val, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(accuracy[best]) and logs["loss"] == pytest.approx(loss[best], rel=1e-4)


def test_a_random_backbone_with_frozen_batchnorm_is_reported_as_collapsed():
    from keras_transfer.training.diagnostics import FeatureCollapseError

    keras.utils.set_random_seed(0)
    model = build_classifier("mobilenetv2", 2, weights=None, input_size=32, augmentation=None)
    x, y = _separable(16, classes=2)
    # head_only on random weights: BatchNorm stays frozen at its initial statistics and the features vanish
    with pytest.raises(FeatureCollapseError, match="collapsed"):
        run_recipe(model, (x, y), recipe="auto", pretrained=False, options=RecipeOptions(strategy="head_only"),
                   verbose=0)


def test_the_cli_takes_a_recipe_and_writes_what_it_chose(image_folder, tmp_path):
    import json

    from keras_transfer.cli import main

    out = tmp_path / "run"
    assert main(["train", image_folder, "--out", str(out), "--recipe", "lp_ft", "--backbone", "tinyvgg", "--weights",
                 "none", "--input-size", "32", "--blocks", "1", "--fine-tune-epochs", "1", "--augmentation", "none",
                 "--head-l2", "0.001"]) == 0
    chosen = json.loads((out / "recipe.json").read_text())
    assert chosen["recipe"] == "lp_ft" and chosen["requested"] == "lp_ft"
    assert chosen["plan"][1].startswith("phase 'head': the head fitted to convergence")
    history = json.loads((out / "history.json").read_text())
    assert history["phase"] == ["head", "fine_tune"]


def test_the_linear_probe_names_labels_outside_the_head():
    model = build_classifier("tinyvgg", 3, weights=None, input_size=32, augmentation=None)
    x, y = _separable(6)
    with pytest.raises(KerasTransferError, match=r"training labels must be class indices in \[0, 2\].*Received: labels "
                                                 r"from 0 to 5"):
        fit_linear_head(model, (x, y + 3 * (y == 2)))
    with pytest.raises(KerasTransferError, match=r"validation labels must be class indices in \[0, 2\]"):
        fit_linear_head(model, (x, y), (x, y - 1))
