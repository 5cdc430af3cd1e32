"""Every reported regression and multi-label metric against scikit-learn, on the raw outputs of a model."""

import keras
import numpy as np
import pytest
from sklearn import metrics as skm

from conftest import make_small_cnn
from keras_transfer.models.heads import build_model, head_of, set_thresholds
from keras_transfer.serving.task_metrics import average_precision, choose_thresholds
from keras_transfer.serving.evaluation import evaluate


def _model(task, units, **kwargs):
    keras.utils.set_random_seed(0)
    model = build_model(make_small_cnn(), task, outputs=units, input_size=32, augmentation=None, **kwargs)
    head = head_of(model)
    head.kernel.assign(np.random.default_rng(0).normal(0, 0.05, head.kernel.shape).astype("float32"))
    return model


def _x(n=24):
    return np.random.default_rng(3).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def test_regression_report_matches_scikit_learn(tmp_path):
    model = _model("regression", 2, target_mean=[3.0, -1.0], target_scale=[2.0, 0.5])
    x = _x()
    raw = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).astype("float64")
    y = raw + np.random.default_rng(1).normal(0, 0.3, raw.shape)
    report = evaluate(model, (x, y), out=str(tmp_path))
    m = report.metrics
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, raw), rel=1e-6)
    assert m["rmse"] == pytest.approx(np.mean(np.sqrt(skm.mean_squared_error(y, raw, multioutput="raw_values"))),
                                      rel=1e-6)
    assert m["r2"] == pytest.approx(skm.r2_score(y, raw), rel=1e-6)
    for j, name in enumerate(report.names):
        per = m["per_target"][name]
        assert per["mae"] == pytest.approx(skm.mean_absolute_error(y[:, j], raw[:, j]), rel=1e-6)
        assert per["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y[:, j], raw[:, j])), rel=1e-6)
        assert per["r2"] == pytest.approx(skm.r2_score(y[:, j], raw[:, j]), rel=1e-6)
    assert (tmp_path / "report.json").is_file() and "R^2" in (tmp_path / "report.txt").read_text()


def test_multilabel_report_matches_scikit_learn():
    model = _model("multilabel", 4)
    set_thresholds(model, [0.45, 0.5, 0.52, 0.55])
    x = _x(40)
    raw = keras.ops.convert_to_numpy(model.predict(x, verbose=0)).astype("float64")
    y = (raw + np.random.default_rng(2).normal(0, 0.02, raw.shape) > np.median(raw, 0)).astype(int)
    m = evaluate(model, (x, y)).metrics
    predicted = (raw >= np.array([0.45, 0.5, 0.52, 0.55])).astype(int)
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, predicted, average=None, zero_division=0)
    ap = skm.average_precision_score(y, raw, average=None)
    for j in range(4):
        per = m["per_label"][str(j)]
        assert (per["precision"], per["recall"], per["f1"], per["support"]) == pytest.approx(
            (precision[j], recall[j], f1[j], support[j]), rel=1e-9)
        assert per["average_precision"] == pytest.approx(ap[j], rel=1e-9)
    assert m["micro_f1"] == pytest.approx(skm.f1_score(y, predicted, average="micro", zero_division=0), rel=1e-9)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro", zero_division=0), rel=1e-9)
    assert m["map"] == pytest.approx(skm.average_precision_score(y, raw, average="macro"), rel=1e-9)
    assert 0 < m["micro_f1"] < 1  # thresholds that matter: not everything on one side


@pytest.mark.backend_free
def test_average_precision_with_ties_and_threshold_choice_match_scikit_learn():
    rng = np.random.default_rng(5)
    scores = np.round(rng.random((60, 3)), 1)  # many ties
    y = (rng.random((60, 3)) < 0.4).astype(int)
    for j in range(3):
        assert average_precision(scores[:, j], y[:, j]) == pytest.approx(
            skm.average_precision_score(y[:, j], scores[:, j]), rel=1e-12)
    assert average_precision(scores[:, 0], np.zeros(60)) is None
    chosen = choose_thresholds(scores, y)
    for j, threshold in enumerate(chosen):
        best = max(skm.f1_score(y[:, j], scores[:, j] >= t, zero_division=0) for t in np.unique(scores[:, j]))
        assert skm.f1_score(y[:, j], scores[:, j] >= threshold) == pytest.approx(best, rel=1e-12)
