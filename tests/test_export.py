"""`export_saved_model`: an inference-mode SavedModel (augmentation and dropout off), reloaded in a fresh process,
written through a temporary folder that never outlives the call."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_transfer
from keras_transfer import export as export_module
from keras_transfer.errors import KerasTransferError

CLASS_NAMES = ["cat", "dog", "emu"]

SERVE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    folder, batch, out = sys.argv[1:]
    served = tf.saved_model.load(folder)
    images = tf.constant(np.load(batch))
    np.save(out + "_1.npy", served.serve(images).numpy())
    np.save(out + "_2.npy", served.serve(images).numpy())
""")


def tiny_model():
    """A classifier on a tiny user backbone (two convs and a BatchNorm: a registry backbone would only make the
    export slower), with light augmentation and dropout 0.5, so training-mode calls differ from each other."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    backbone = keras.Model(inputs, x)
    return keras_transfer.build_classifier(backbone, class_names=CLASS_NAMES, augmentation="light", dropout=0.5,
                                           seed=0)


def images(n, seed):
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def leftovers(parent):
    return sorted(name for name in os.listdir(parent) if name.startswith(".export-"))


def serve_in_fresh_process(folder, batch, tmp_path):
    """Loads the SavedModel with `tf.saved_model.load` in a new Python process; returns two calls' outputs."""
    script, batch_file, out = tmp_path / "serve.py", tmp_path / "batch.npy", tmp_path / "served"
    script.write_text(SERVE_SCRIPT)
    np.save(batch_file, batch)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(script), str(folder), str(batch_file), str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(f"{out}_1.npy"), np.load(f"{out}_2.npy")


@pytest.fixture
def trained_model():
    """A tiny classifier with light augmentation and dropout 0.5, after a few training steps."""
    model = tiny_model()
    head = model.get_layer("predictions")  # starts at zero: random weights make the outputs depend on the input
    head.kernel.assign(np.random.default_rng(0).normal(0, 0.3, tuple(head.kernel.shape)).astype("float32"))
    keras_transfer.compile_model(model, "feature_extraction")
    model.fit(images(6, seed=1), np.arange(6) % 3, batch_size=2, epochs=1, verbose=0)
    return model


def test_export_serves_the_inference_mode_model(trained_model, tmp_path):
    batch = images(5, seed=2)
    # Training mode is random here (augmentation, dropout): an export that kept it would not be reproducible.
    first = keras.ops.convert_to_numpy(trained_model(batch, training=True))
    second = keras.ops.convert_to_numpy(trained_model(batch, training=True))
    assert np.abs(first - second).max() > 1e-3

    target = tmp_path / "exported"
    difference = keras_transfer.export_saved_model(trained_model, target)
    assert difference is not None and 0 <= difference <= 1e-4
    assert (target / "saved_model.pb").is_file()
    with open(target / "class_names.json") as f:
        assert json.load(f) == CLASS_NAMES
    assert leftovers(tmp_path) == []

    served_1, served_2 = serve_in_fresh_process(target, batch, tmp_path)
    expected = trained_model.predict(batch, verbose=0)
    assert served_1.shape == expected.shape == (5, 3)
    assert expected.std(axis=0).max() > 1e-3  # the outputs depend on the input: the comparison means something
    np.testing.assert_allclose(served_1, expected, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(served_1, served_2)
    np.testing.assert_allclose(served_1.sum(-1), 1.0, atol=1e-5)


def test_export_without_check_returns_none(tmp_path):
    assert keras_transfer.export_saved_model(tiny_model(), tmp_path / "exported", check=False) is None
    assert (tmp_path / "exported" / "saved_model.pb").is_file()
    assert leftovers(tmp_path) == []


def test_existing_path_is_refused_and_left_untouched(tmp_path):
    target = tmp_path / "exported"
    target.mkdir()
    (target / "keep.txt").write_text("earlier export")
    with pytest.raises(KerasTransferError, match="already exists") as info:
        keras_transfer.export_saved_model(tiny_model(), target)
    assert str(target) in str(info.value)
    assert os.listdir(target) == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "earlier export"
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_write_out(self, *args, **kwargs):
        raise RuntimeError("disk full")

    # keras.export.ExportArchive() returns an instance of the backend's archive class (its __new__ is a
    # factory), so patching keras.export.ExportArchive.write_out itself would not reach the call.
    archive_class = type(keras.export.ExportArchive())
    monkeypatch.setattr(archive_class, "write_out", broken_write_out)
    target = tmp_path / "exported"
    with pytest.raises(RuntimeError, match="disk full"):
        keras_transfer.export_saved_model(tiny_model(), target)
    assert not os.path.exists(target)
    assert os.listdir(tmp_path) == []


def test_failed_check_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "_check", lambda model, folder, shape: 1.0)
    target = tmp_path / "sub" / "exported"
    with pytest.raises(KerasTransferError, match="nothing was written"):
        keras_transfer.export_saved_model(tiny_model(), target)
    assert not os.path.exists(target)
    assert os.listdir(tmp_path / "sub") == []
