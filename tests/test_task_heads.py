"""Regression and multi-label heads: plain `model.fit` with every loss, the standardised loss, the probe's exact
solutions against scikit-learn's Ridge and LogisticRegression, and the bad-input paths."""

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from conftest import make_small_cnn
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import feature_extractor
from keras_transfer.models.heads import (StandardisedRegressionLoss, build_model, head_of, set_thresholds, task_loss,
                                         task_metrics)
from keras_transfer.training.linear_probe import extract, standardiser
from keras_transfer.training.linear_probe import fit_linear_head


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32")
    return x, x.mean((1, 2))


@pytest.mark.parametrize("task, loss", [("regression", "mse"), ("regression", "mae"), ("regression", "huber"),
                                        ("multilabel", "bce"), ("multilabel", "focal")])
def test_plain_fit_trains_every_loss(task, loss):
    x, colour = _data()
    y = colour[:, :2] if task == "regression" else (colour > colour.mean(0)).astype("float32")
    keras.utils.set_random_seed(0)
    model = build_model(make_small_cnn(), task, outputs=y.shape[1], input_size=32, augmentation=None, loss=loss,
                        target_mean=y.mean(0) if task == "regression" else None)
    model.get_layer("backbone").trainable = False  # a convex problem in the head: the loss must go down
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=task_loss(model), metrics=task_metrics(model))
    before = keras.ops.convert_to_numpy(head_of(model).kernel).copy()
    start = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] < start
    assert np.abs(keras.ops.convert_to_numpy(head_of(model).kernel) - before).max() > 0


@pytest.mark.backend_free
def test_standardised_loss_is_keras_loss_on_standardised_values():
    rng = np.random.default_rng(0)
    y, p = rng.normal(50, 10, (8, 2)), rng.normal(50, 10, (8, 2))
    mean, scale = np.array([50.0, 40.0]), np.array([10.0, 5.0])
    zs = ((y - mean) / scale).astype("float32"), ((p - mean) / scale).astype("float32")
    for kind, reference in (("mse", keras.losses.MeanSquaredError()), ("mae", keras.losses.MeanAbsoluteError()),
                            ("huber", keras.losses.Huber(delta=1.0))):
        got = StandardisedRegressionLoss(kind, mean.tolist(), scale.tolist())(y.astype("float32"), p.astype("float32"))
        assert float(got) == pytest.approx(float(reference(*zs)), rel=1e-5)


def _features(model, x):
    f = keras.ops.convert_to_numpy(feature_extractor(model)(x)).astype("float64")
    std = f.std(0)
    std[std < 1e-12] = 1.0
    return (f - f.mean(0)) / std


def test_regression_probe_is_ridge_in_closed_form():
    x, colour = _data(20)
    y = colour[:, :1] * 3.0 + 7.0
    model = build_model(make_small_cnn(), "regression", outputs=1, input_size=32, augmentation=None,
                        target_mean=y.mean(0), target_scale=y.std(0))
    probe = fit_linear_head(model, (x, y), l2=0.05)
    scaled = _features(model, x)
    ridge = Ridge(alpha=len(y) * 0.05).fit(scaled, (y - y.mean(0)) / y.std(0))
    expected = ridge.predict(scaled).reshape(-1, 1) * y.std(0) + y.mean(0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.predict(x, verbose=0)), expected, rtol=1e-3, atol=1e-3)
    assert probe.logs()["loss"] >= 0 and "rmse" in probe.logs()


def test_regression_probe_with_views_is_ridge_on_the_images_and_their_shifted_copies():
    x, colour = _data(12)
    y = colour[:, :1] * 3.0 + 7.0
    model = build_model(make_small_cnn(), "regression", outputs=1, input_size=32, augmentation=None,
                        target_mean=y.mean(0), target_scale=y.std(0))
    probe = fit_linear_head(model, (x, y), l2=0.05, views=2, seed=3)
    f, _ = extract(feature_extractor(model), (x, y), views=2, seed=3)  # the images, then two shifted copies
    assert len(f) == 36
    mean, std = standardiser(f)
    ridge = Ridge(alpha=len(f) * 0.05).fit((f - mean) / std, np.tile((y - y.mean(0)) / y.std(0), (3, 1)))
    expected = ridge.predict((f[:12] - mean) / std).reshape(-1, 1) * y.std(0) + y.mean(0)
    got = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    assert probe.logs()["rmse"] == pytest.approx(float(np.sqrt(((got - y) ** 2).mean())), rel=1e-3)  # originals only


def test_multilabel_probe_is_logistic_regression_per_label():
    x, colour = _data(24)
    y = (colour > np.median(colour, 0)).astype("float32")
    model = build_model(make_small_cnn(), "multilabel", outputs=3, input_size=32, augmentation=None)
    fit_linear_head(model, (x, y), l2=0.1)
    scaled = _features(model, x)
    got = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    for j in range(3):
        reference = LogisticRegression(C=1.0 / (len(y) * 0.1), tol=1e-10, max_iter=10000).fit(scaled, y[:, j])
        np.testing.assert_allclose(got[:, j], reference.predict_proba(scaled)[:, 1], atol=2e-3)


def test_bad_head_inputs_are_one_line_errors():
    with pytest.raises(KerasTransferError, match="Unknown task 'regresion'. Did you mean 'regression'"):
        build_model(make_small_cnn(), "regresion", outputs=1, input_size=32)
    with pytest.raises(KerasTransferError, match="Unknown loss 'focal'"):
        build_model(make_small_cnn(), "regression", outputs=1, input_size=32, loss="focal")
    with pytest.raises(KerasTransferError, match=r"target_scale must be one finite number or one per output \(2\)"):
        build_model(make_small_cnn(), "regression", outputs=2, input_size=32, target_scale=[1, 2, 3])
    model = build_model(make_small_cnn(), "multilabel", outputs=2, input_size=32)
    with pytest.raises(KerasTransferError, match=r"thresholds must lie in \[0, 1\]"):
        set_thresholds(model, [0.5, 1.5])
    with pytest.raises(KerasTransferError, match="class_weight applies to classification only"):
        fit_linear_head(model, _data(4)[0:1] + (np.ones((4, 2)),), class_weight={0: 2.0})
