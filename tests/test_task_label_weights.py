"""Class weighting for rare labels (multi-label) and feature caching for regression and multi-label heads:
the weights from the training split, the weighted loss against hand-computed values, the weights saved with the
model, and cached head training that leaves the full model predicting what the head predicts on the features."""

import json
import os

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from conftest import make_small_cnn
from keras_transfer.data.digit_tasks import write_digit_tiles, write_digit_values
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import feature_extractor, head_model
from keras_transfer.models.heads import build_model, head_of, task_loss
from keras_transfer.models.label_weights import WeightedBinaryCrossentropy, positive_weights
from keras_transfer.runs.train import train_from_folder
from keras_transfer.training.caching import train_phase_cached
from keras_transfer.training.linear_probe import fit_linear_head
from keras_transfer.training.presets import get_preset

FAST = dict(backbone="tinyvgg", weights=None, input_size=32, augmentation="none", recipe="two_phase", epochs=1,
            fine_tune_epochs=1, batch_size=8, jit_compile=False, verbose=0)


def _bce(y, p, weights, focal=False):
    """The weighted (focal) binary cross-entropy, written out in numpy."""
    terms = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if focal:
        terms *= (1 - (y * p + (1 - y) * (1 - p))) ** 2
    return float((np.where(y > 0, weights, 1.0) * terms).mean())


@pytest.mark.backend_free
def test_positive_weights_are_negatives_over_positives_clipped_to_one_and_the_cap():
    targets = np.zeros((12, 3))
    targets[0, 0] = 1  # 1 positive, 11 negatives: 11, capped at 10
    targets[:3, 1] = 1  # 3 positives, 9 negatives: 3
    targets[:10, 2] = 1  # 10 positives, 2 negatives: 0.2, clipped to 1
    assert positive_weights(targets) == pytest.approx([10.0, 3.0, 1.0])
    assert positive_weights(targets, cap=20) == pytest.approx([11.0, 3.0, 1.0])


@pytest.mark.backend_free
@pytest.mark.parametrize("targets, cap, message", [
    ([[1, 0], [1, 0]], 10, "label 1 has none"),
    ([[1, 0.5]], 10, "must be a non-empty 0/1 matrix"),
    ([[1, 1]], 0.5, "cap must be a number >= 1"),
])
def test_positive_weights_bad_input(targets, cap, message):
    with pytest.raises(KerasTransferError, match=message):
        positive_weights(targets, cap=cap)


@pytest.mark.parametrize("focal", [False, True])
def test_weighted_loss_equals_the_hand_computed_value_and_keras_when_unweighted(focal):
    rng = np.random.default_rng(0)
    y = (rng.random((6, 3)) > 0.5).astype("float32")
    p = rng.uniform(0.05, 0.95, (6, 3)).astype("float32")
    weights = [4.0, 1.0, 2.5]
    loss = WeightedBinaryCrossentropy(weights, focal=focal)
    assert float(loss(y, p)) == pytest.approx(_bce(y, p, np.array(weights), focal), rel=1e-4)
    plain = keras.losses.BinaryFocalCrossentropy() if focal else keras.losses.BinaryCrossentropy()
    unweighted = WeightedBinaryCrossentropy([1.0] * 3, focal=focal)
    assert float(unweighted(y, p)) == pytest.approx(float(plain(y, p)), rel=1e-4)
    assert float(loss(y, p)) > float(plain(y, p))  # positives weighted up: a larger loss


def test_label_weights_travel_in_the_keras_file_and_make_the_loss(tmp_path):
    model = build_model(make_small_cnn(), "multilabel", outputs=3, input_size=32, augmentation=None, loss="focal",
                        label_weights=[5.0, 1.0, 2.0])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert head_of(loaded).label_weights == [5.0, 1.0, 2.0]
    loss = task_loss(loaded)
    assert isinstance(loss, WeightedBinaryCrossentropy) and loss.focal and loss.label_weights == [5.0, 1.0, 2.0]
    assert not isinstance(task_loss(build_model(make_small_cnn(), "multilabel", outputs=3, input_size=32,
                                                augmentation=None)), WeightedBinaryCrossentropy)
    with pytest.raises(KerasTransferError, match="label_weights are positive weights"):
        build_model(make_small_cnn(), "regression", outputs=1, input_size=32, label_weights=[2.0])
    with pytest.raises(KerasTransferError, match="label_weights are positive weights"):
        build_model(make_small_cnn(), "multilabel", outputs=2, input_size=32, label_weights=[2.0, 0.0])


def test_weighted_multilabel_run_on_cached_features(tmp_path):
    manifest = write_digit_tiles(str(tmp_path / "data"), n=24, digits=(0, 1, 2, 3, 4, 5))
    run = tmp_path / "run"
    train_from_folder(manifest, str(run), task="multilabel", class_weight="balanced", cache_features=True,
                      cache_dir=str(tmp_path / "cache"), validation_split=0.25, **FAST)
    splits = json.loads((run / "splits.json").read_text())
    expected = positive_weights([t for _, t in splits["train"]])
    assert max(expected) > 1.0  # some digit is rare enough in 18 tiles to be weighted up
    stored = json.loads((run / "config.json").read_text())["label_weights"]
    assert stored == pytest.approx(dict(zip(splits["names"], expected)))
    best = keras.saving.load_model(run / "best.keras")
    assert head_of(best).label_weights == pytest.approx(expected)
    assert os.path.isfile(tmp_path / "cache" / "train.features.f32")  # the head phase read cached features
    x = np.stack([np.asarray(keras.utils.load_img(p, target_size=(32, 32)), "float32") for p, _ in splits["val"]])
    y = np.array([t for _, t in splits["val"]], "float32")
    best.compile(loss=task_loss(best))
    evaluated = best.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    p = np.clip(best.predict(x, verbose=0), 1e-7, 1 - 1e-7)
    assert evaluated == pytest.approx(_bce(y, p, np.array(expected)), rel=1e-3)


def test_weighted_probe_is_sample_weighted_logistic_regression_and_reports_the_weighted_loss():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (24, 32, 32, 3)).astype("float32")
    colour = x.mean((1, 2))
    y = (colour > np.quantile(colour, 0.75, axis=0)).astype("float32")  # a quarter positive: weights 3
    weights = positive_weights(y)
    model = build_model(make_small_cnn(), "multilabel", outputs=3, input_size=32, augmentation=None,
                        label_weights=weights)
    probe = fit_linear_head(model, (x, y), (x, y), l2=0.1)
    f = keras.ops.convert_to_numpy(feature_extractor(model)(x)).astype("float64")
    std = f.std(0)
    std[std < 1e-12] = 1.0
    scaled = (f - f.mean(0)) / std
    got = np.clip(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), 1e-7, 1 - 1e-7)
    for j in range(3):
        reference = LogisticRegression(C=1.0 / (len(y) * 0.1), tol=1e-10, max_iter=10000)
        reference.fit(scaled, y[:, j], sample_weight=1.0 + (weights[j] - 1.0) * y[:, j])
        np.testing.assert_allclose(got[:, j], reference.predict_proba(scaled)[:, 1], atol=2e-3)
    assert probe.val_logs["loss"] == pytest.approx(_bce(y, got, np.array(weights)), rel=1e-3)
    model.compile(loss=task_loss(model))
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(probe.val_logs["loss"], rel=1e-3)


def test_weighted_multilabel_run_fits_its_probe_weighted(tmp_path):
    manifest = write_digit_tiles(str(tmp_path / "data"), n=12, digits=(0, 1, 2))
    train_from_folder(manifest, str(tmp_path / "run"), task="multilabel", class_weight="balanced",
                      **dict(FAST, recipe="lp_ft"))
    plan = json.load(open(tmp_path / "run" / "recipe.json"))
    assert plan["recipe"] == "lp_ft" and os.path.isfile(tmp_path / "run" / "best.keras")


@pytest.mark.parametrize("task, cache", [("regression", "memory"), ("multilabel", "disk")])
def test_cached_head_training_leaves_the_full_model_predicting_like_the_head(tmp_path, task, cache):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (12, 32, 32, 3)).astype("float32")
    y = x.mean((1, 2))[:, :2] if task == "regression" else (rng.random((12, 3)) > 0.5).astype("float32")
    y[0] = y[0] if task == "regression" else 1.0  # every label has a positive
    keras.utils.set_random_seed(0)
    model = build_model(make_small_cnn(), task, outputs=y.shape[1], input_size=32, augmentation=None,
                        target_mean=y.mean(0) if task == "regression" else None,
                        target_scale=y.std(0) if task == "regression" else None,
                        label_weights=[2.0, 1.0, 3.0] if task == "multilabel" else None)
    before = model.predict(x, verbose=0)
    preset = get_preset("feature_extraction", epochs=3, learning_rate=1e-2)
    history, _ = train_phase_cached(model, (x, y), (x, y), preset=preset, verbose=0, jit_compile=False,
                                    cache="memory" if cache == "memory" else str(tmp_path / "cache"))
    assert len(history.epoch) == 3 and np.all(np.isfinite(history.history["loss"]))
    after = model.predict(x, verbose=0)
    assert np.abs(after - before).max() > 1e-4  # the full model's head trained
    features = keras.Model(model.inputs, head_of(model).input).predict(x, verbose=0)
    np.testing.assert_allclose(head_model(model).predict(features, verbose=0), after, rtol=1e-4, atol=1e-4)
    if task == "regression":  # values in the user's units: around the targets' mean, not the standardised 0
        assert abs(after.mean() - y.mean()) < 3 * y.std()


def test_cached_regression_run_trains_from_cached_features(tmp_path):
    manifest = write_digit_values(str(tmp_path / "data"), n=16)
    model, result = train_from_folder(manifest, str(tmp_path / "run"), task="regression", cache_features=True,
                                      **FAST)
    assert result.phases == ["head", "fine_tune"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["phase"] == ["head", "fine_tune"] and all(np.isfinite(history["val_rmse"]))
    assert json.loads((tmp_path / "run" / "report.json").read_text())["task"] == "regression"
