"""Run folders written by keras_transfer 0.1.0 (tests/fixtures/make_run_folders.py: image classification,
regression and multi-label, text classification) still load and predict what they predicted then, and each
`best.keras` loads without naming its modality."""

import json
import os

import numpy as np
import pytest

import keras_transfer
from keras_transfer.models.heads import get_thresholds, task_of

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "runs_v0_1_0")
RUNS = ["image_classification", "image_regression", "image_multilabel", "text_classification"]


def _expected(run):
    with open(os.path.join(run, "predictions.json")) as f:
        return json.load(f)


def _inputs(run, stored):
    return stored["inputs"] if "text" in os.path.basename(run) else [os.path.join(run, p) for p in stored["inputs"]]


def _assert_same_row(got, expected, thresholds):
    if "top" in expected:
        assert [name for name, _ in got["top"]] == [name for name, _ in expected["top"]]
        np.testing.assert_allclose([p for _, p in got["top"]], [p for _, p in expected["top"]], atol=1e-5)
    elif "values" in expected:
        assert sorted(got["values"]) == sorted(expected["values"])
        np.testing.assert_allclose([got["values"][k] for k in sorted(expected["values"])],
                                   [expected["values"][k] for k in sorted(expected["values"])], atol=1e-5)
    else:
        names = sorted(expected["probabilities"])
        np.testing.assert_allclose([got["probabilities"][k] for k in names],
                                   [expected["probabilities"][k] for k in names], atol=1e-5)
        clear = {k for k, t in thresholds.items() if abs(expected["probabilities"][k] - t) > 1e-4}
        assert set(got["labels"]) & clear == set(expected["labels"]) & clear  # a label on its threshold may flip


@pytest.mark.parametrize("name", RUNS)
def test_a_run_folder_of_0_1_0_predicts_what_it_predicted(name):
    if name.startswith("text"):
        pytest.importorskip("keras_hub", reason="text runs need the `text` extra")
    run = os.path.join(FIXTURES, name)
    stored = _expected(run)
    loaded = keras_transfer.load_model(run)
    model, names = loaded[0], loaded[-1]
    assert list(names) == json.load(open(os.path.join(run, "class_names.json")))
    thresholds = dict(zip(names, get_thresholds(model))) if task_of(model) == "multilabel" else {}
    rows = keras_transfer.predict(run, _inputs(run, stored))
    assert len(rows) == len(stored["rows"]) == 3
    for got, expected in zip(rows, stored["rows"]):
        _assert_same_row(got, expected, thresholds)


@pytest.mark.parametrize("name", RUNS)
def test_a_keras_file_of_0_1_0_loads_without_naming_its_modality(name):
    if name.startswith("text"):
        pytest.importorskip("keras_hub", reason="text runs need the `text` extra")
    run = os.path.join(FIXTURES, name)
    model, names = keras_transfer.load_model(os.path.join(run, "best.keras"))
    assert list(names) == json.load(open(os.path.join(run, "class_names.json")))
    assert task_of(model) == name.split("_")[1]
    if name.startswith("image"):  # a model file predicts the run's images as the run folder does
        stored = _expected(run)
        rows = keras_transfer.predict(os.path.join(run, "best.keras"), _inputs(run, stored))
        for got, expected in zip(rows, stored["rows"]):
            _assert_same_row(got, expected, dict(zip(names, get_thresholds(model))) if "labels" in expected else {})
