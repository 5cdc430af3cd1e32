"""Regression and multi-label models through export: the targets' standardisation and the per-label thresholds
survive `.keras`, SavedModel (loaded in a fresh process) and TFLite, and every format matches the in-memory model."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import make_small_cnn
from keras_transfer.models.classifier import feature_extractor
from keras_transfer.models.heads import build_model, get_thresholds, head_of, set_thresholds
from keras_transfer.serving.export import export, thresholds_beside
from keras_transfer.serving.export_tflite import run_tflite

# Loads each SavedModel named on the command line (folder, then the .npy batch) in this one fresh process.
FRESH = """
import json, sys
import numpy as np, tensorflow as tf
results = []
for folder, batch in zip(sys.argv[1::2], sys.argv[2::2]):
    served = tf.saved_model.load(folder)
    x = np.load(batch)
    out = {"serve": served.serve(tf.constant(x)).numpy().tolist(),
           "names": [n.decode() for n in served.class_names().numpy()]}
    if hasattr(served, "thresholds"):
        out["thresholds"] = served.thresholds().numpy().tolist()
    results.append(out)
print(json.dumps(results))
"""


def _images(n=4):
    return np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3)).astype("float32")


def _regression():
    keras.utils.set_random_seed(0)
    model = build_model(make_small_cnn(), "regression", class_names=["age", "weight"], input_size=32,
                        augmentation=None, target_mean=[40.0, 70.0], target_scale=[12.0, 9.0])
    head = head_of(model)
    head.kernel.assign(np.random.default_rng(0).normal(0, 0.1, head.kernel.shape).astype("float32"))
    return model


def _multilabel():
    keras.utils.set_random_seed(0)
    model = build_model(make_small_cnn(), "multilabel", class_names=["a", "b", "c"], input_size=32, augmentation=None)
    head = head_of(model)
    head.kernel.assign(np.random.default_rng(0).normal(0, 0.1, head.kernel.shape).astype("float32"))
    set_thresholds(model, [0.25, 0.5, 0.75])
    return model


MAKERS = {"regression": _regression, "multilabel": _multilabel}


@pytest.fixture(scope="module")
def served_fresh(tmp_path_factory):
    """Each task's model exported as a SavedModel and served in ONE fresh process (a process for both, not one
    each: the fresh start is what is tested, and each start pays TensorFlow's import):
    `{task: (model, x, expected, export result, served outputs)}`."""
    tmp_path = tmp_path_factory.mktemp("task_export")
    exported, argv = {}, []
    for name, make in MAKERS.items():
        model, x = make(), _images()
        expected = keras.ops.convert_to_numpy(model(x, training=False))
        result = export(model, tmp_path / name, format="saved_model")
        np.save(tmp_path / f"{name}.npy", x)
        exported[name] = (model, x, expected, result)
        argv += [str(tmp_path / name), str(tmp_path / f"{name}.npy")]
    script = tmp_path / "fresh.py"
    script.write_text(FRESH)
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (*exported[name], out) for name, out in zip(exported, served)}


@pytest.mark.parametrize("task", MAKERS)
def test_saved_model_in_a_fresh_process_serves_units_and_thresholds(task, served_fresh):
    model, x, expected, result, served = served_fresh[task]
    assert result.max_abs_difference <= 1e-4
    np.testing.assert_allclose(served["serve"], expected, atol=1e-4)
    assert served["names"] == head_of(model).class_names
    if get_thresholds(model) is not None:
        np.testing.assert_allclose(served["thresholds"], [0.25, 0.5, 0.75], atol=1e-7)
    else:  # regression: the served values are the linear head's output mapped back to the user's units
        assert "thresholds" not in served
        head = head_of(model)
        features = keras.ops.convert_to_numpy(feature_extractor(model)(x))
        z = features @ keras.ops.convert_to_numpy(head.kernel) + keras.ops.convert_to_numpy(head.bias)
        np.testing.assert_allclose(served["serve"], z * [12.0, 9.0] + [40.0, 70.0], rtol=1e-4, atol=1e-3)
        assert np.abs(z).max() > 1e-3  # so the scale is exercised


@pytest.mark.parametrize("make", [_regression, _multilabel], ids=["regression", "multilabel"])
def test_keras_file_keeps_standardisation_thresholds_and_loss(make, tmp_path):
    model = make()
    x = _images()
    export(model, tmp_path / "m.keras", format="keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-5)
    head = head_of(loaded)
    assert (head.task, head.loss, head.class_names) == (head_of(model).task, head_of(model).loss,
                                                         head_of(model).class_names)
    assert head.target_mean == head_of(model).target_mean and head.target_scale == head_of(model).target_scale
    assert get_thresholds(loaded) == get_thresholds(model)


@pytest.mark.parametrize("make", [_regression, _multilabel], ids=["regression", "multilabel"])
def test_tflite_matches_and_carries_thresholds_beside(make, tmp_path):
    model = make()
    x = _images()
    path = tmp_path / "m.tflite"
    result = export(model, path, format="tflite")
    assert result.max_abs_difference <= 1e-3
    np.testing.assert_allclose(run_tflite(path, x), keras.ops.convert_to_numpy(model(x)), atol=1e-3)
    if get_thresholds(model) is not None:
        assert json.loads(open(thresholds_beside(str(path))).read()) == [0.25, 0.5, 0.75]
    else:
        assert not (tmp_path / "m.thresholds.json").exists()
