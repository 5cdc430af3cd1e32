"""Regression and multi-label models through export: the targets' standardisation and the per-label thresholds
survive `.keras`, SavedModel (loaded in a fresh process) and TFLite, and every format matches the in-memory model.
The classifier's inference-mode SavedModel (tests/test_export.py's tiny model) is served in the same fresh process:
every endpoint, as TF Serving and `tf.saved_model.load` see it; and so is a text classifier's raw-string SavedModel
(a tiny random BERT, test_text.py's), with only TensorFlow and TensorFlow Text imported."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_transfer
from conftest import make_small_cnn
from test_export import CLASS_NAMES, leftovers, pixels, train_tiny_model
from keras_transfer.models.classifier import feature_extractor
from keras_transfer.models.heads import build_model, get_thresholds, head_of, set_thresholds
from keras_transfer.serving.export import export, thresholds_beside
from keras_transfer.serving.export_tflite import run_tflite

# Loads each SavedModel named on the command line (folder, the .npy batch or .json texts, "all", "serve" or "text")
# in this one fresh process and calls `serve`, `class_names` and, for a multi-label model, `thresholds`; with "all"
# also `serve` again, TF Serving's view (the serving_default signature, input "images", output "output_0"),
# `serve_uint8` and `serve_any_size` (at 48 x 40). Each endpoint's first call prepares its own function (optimises
# its graph; under JAX, compiles the exported XLA module): the task models, whose tests look at `serve` only, call
# only that. "text": raw strings, with TensorFlow Text imported (its ops), and neither KerasHub nor keras_transfer
# (`modules` records which of them the process had imported, for the text test; TensorFlow imports Keras itself).
FRESH = """
import json, sys
import numpy as np, tensorflow as tf
results = []
for folder, batch, endpoints in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    if endpoints == "text":
        import tensorflow_text  # noqa: F401 - registers the tokenizer's ops before the load
        x = tf.constant(json.load(open(batch)))
    else:
        x = tf.constant(np.load(batch))
    served = tf.saved_model.load(folder)
    out = {"serve": served.serve(x).numpy().tolist(), "names": [n.decode() for n in served.class_names().numpy()]}
    if endpoints == "all":
        out.update(serve_again=served.serve(x).numpy().tolist(),
                   default=served.signatures["serving_default"](images=x)["output_0"].numpy().tolist(),
                   uint8=served.serve_uint8(tf.cast(x, tf.uint8)).numpy().tolist(),
                   any_size=served.serve_any_size(tf.image.resize(x, (48, 40))).numpy().tolist())
    if hasattr(served, "thresholds"):
        out["thresholds"] = served.thresholds().numpy().tolist()
    if endpoints == "text":
        out["modules"] = sorted(m for m in ("keras_hub", "keras_transfer") if m in sys.modules)
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


TEXTS = ["good film", "not very good plot at all", "bad"]


def _text_classifier(path):
    """test_text.py's tiny random BERT classifier (mean pooling, a random head), exported as a raw-string
    SavedModel at `path`, and `TEXTS` written beside it: `(model, texts, expected, export's difference)`."""
    from test_text import tiny_bert
    from keras_transfer.models.text_classifier import build_text_classifier
    from keras_transfer.serving.export_text import export_text_saved_model

    encoder, preprocessor = tiny_bert()
    model, preprocessor = build_text_classifier(encoder, 3, preprocessor=preprocessor, pooling="mean",
                                                class_names=["a", "b", "c"])
    head = model.get_layer("predictions")
    head.kernel.assign(np.random.default_rng(0).normal(0, 1, tuple(head.kernel.shape)).astype("float32"))
    difference = export_text_saved_model(model, preprocessor, str(path))
    with open(path.parent / "texts.json", "w") as f:
        json.dump(TEXTS, f)
    return model, TEXTS, keras.ops.convert_to_numpy(model(preprocessor(TEXTS))), difference


@pytest.fixture(scope="module")
def served_fresh(tmp_path_factory):
    """Each task's model and a text classifier exported as a SavedModel and served in ONE fresh process (a process
    for all four, not one each: the fresh start is what is tested, and each start pays TensorFlow's import):
    `{task: (model, x, expected, export result, served outputs)}`; the classifier's export result is
    `export_saved_model`'s largest difference, and its entry adds the export folder, its leftovers and two
    training-mode calls made before the export (a training-mode call updates the BatchNorm statistics: after the
    export, the model would no longer be the one exported)."""
    tmp_path = tmp_path_factory.mktemp("task_export")
    exported, argv = {}, []
    keras.utils.set_random_seed(0)
    classifier, batch = train_tiny_model(), pixels(5, seed=2)
    training_mode = [keras.ops.convert_to_numpy(classifier(batch, training=True)) for _ in range(2)]
    target = tmp_path / "classification" / "exported"
    target.parent.mkdir()
    difference = keras_transfer.export_saved_model(classifier, target)
    exported["classification"] = (classifier, batch, classifier.predict(batch, verbose=0), difference)
    np.save(tmp_path / "classification.npy", batch)
    argv += [str(target), str(tmp_path / "classification.npy"), "all"]
    for name, make in MAKERS.items():
        model, x = make(), _images()
        expected = keras.ops.convert_to_numpy(model(x, training=False))
        result = export(model, tmp_path / name, format="saved_model")
        np.save(tmp_path / f"{name}.npy", x)
        exported[name] = (model, x, expected, result)
        argv += [str(tmp_path / name), str(tmp_path / f"{name}.npy"), "serve"]
    exported["text"] = _text_classifier(tmp_path / "text")
    argv += [str(tmp_path / "text"), str(tmp_path / "texts.json"), "text"]
    script = tmp_path / "fresh.py"
    script.write_text(FRESH)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    fresh = {name: (*exported[name], {k: v if k in ("names", "modules") else np.array(v) for k, v in out.items()})
             for name, out in zip(exported, served)}
    return dict(fresh, classification=(*fresh["classification"], target, leftovers(target.parent), training_mode))


def test_export_serves_the_inference_mode_model(served_fresh):
    model, batch, expected, difference, served, target, left, (first, second) = served_fresh["classification"]
    # Training mode is random here (augmentation, dropout): an export that kept it would not be reproducible.
    assert np.abs(first - second).max() > 1e-3

    assert difference is not None and 0 <= difference <= 1e-4
    assert (target / "saved_model.pb").is_file()
    with open(target / "class_names.json") as f:
        assert json.load(f) == CLASS_NAMES
    assert left == []

    assert served["serve"].shape == expected.shape == (5, 3)
    assert expected.std(axis=0).max() > 1e-3  # the outputs depend on the input: the comparison means something
    np.testing.assert_allclose(served["serve"], expected, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(served["serve"], served["serve_again"])
    np.testing.assert_array_equal(served["default"], served["serve"])
    np.testing.assert_allclose(served["uint8"], expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(served["serve"].sum(-1), 1.0, atol=1e-5)
    assert served["names"] == CLASS_NAMES

    # serve_any_size resizes inside (bilinear, keras.ops.image.resize) to the input size.
    bigger = keras.ops.image.resize(batch, (48, 40))
    resized = keras.ops.image.resize(bigger, (32, 32), antialias=False)
    expected_any = keras.ops.convert_to_numpy(model(resized, training=False))
    np.testing.assert_allclose(served["any_size"], expected_any, atol=1e-4, rtol=0)
    assert np.abs(served["any_size"] - expected).max() > 0  # a different input: the endpoint did resize


def test_a_text_saved_model_serves_raw_strings_in_a_fresh_tensorflow_process(served_fresh):
    """The raw-string SavedModel needs only TensorFlow and TensorFlow Text where it is served (TF Serving's view):
    it loads, tokenizes and predicts like the Keras model, with its class names, in a process that never imported
    KerasHub or keras_transfer."""
    model, texts, expected, difference, served = served_fresh["text"]
    assert difference <= 1e-4  # export_text_saved_model's own check, in this process
    assert np.ptp(expected, axis=0).max() > 1e-3  # the texts give different outputs: the check can fail
    assert served["modules"] == []
    assert served["names"] == ["a", "b", "c"]
    np.testing.assert_allclose(served["serve"], expected, atol=1e-4)


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
