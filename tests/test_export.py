"""`export_saved_model` / `export(format="saved_model")`: an inference-mode SavedModel (augmentation and dropout
off) with `serve`, `serving_default`, `serve_uint8`, `serve_any_size` and `class_names` endpoints, written through a
temporary folder that never outlives the call; bad targets refused up front. The classifier's SavedModel reloaded
in a fresh process: tests/test_task_export.py (`test_export_serves_the_inference_mode_model`), in the one fresh
process that also serves the regression and multi-label exports (each start pays TensorFlow's import)."""

import os

import keras
import numpy as np
import pytest

import keras_transfer
from keras_transfer import io as kt_io
from keras_transfer.serving import export as export_module
from keras_transfer.errors import KerasTransferError

CLASS_NAMES = ["cat", "dog", "emu"]

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


def pixels(n, seed):
    """Whole-number pixels, so that the uint8 endpoint sees the same image."""
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype("float32")


def leftovers(parent):
    return sorted(name for name in os.listdir(parent) if name.startswith(".export-"))


def train_tiny_model():
    """A tiny classifier with light augmentation and dropout 0.5, after a few training steps."""
    model = tiny_model()
    head = model.get_layer("predictions")  # starts at zero: random weights make the outputs depend on the input
    head.kernel.assign(np.random.default_rng(0).normal(0, 0.3, tuple(head.kernel.shape)).astype("float32"))
    keras_transfer.compile_model(model, "feature_extraction")
    model.fit(images(6, seed=1), np.arange(6) % 3, batch_size=2, epochs=1, verbose=0)
    return model


@pytest.fixture
def trained_model():
    """`train_tiny_model()`'s classifier."""
    return train_tiny_model()


def test_export_returns_a_result_and_can_leave_out_endpoints(trained_model, tmp_path):
    import tensorflow as tf

    result = export_module.export(trained_model, tmp_path / "plain", uint8=False, resize=False)
    assert result.format == "saved_model" and result.path == str(tmp_path / "plain")
    assert 0 <= result.max_abs_difference <= result.tolerance == 1e-4
    assert result.top1_agreement == 1.0
    assert "largest difference" in result.summary()
    served = tf.saved_model.load(str(tmp_path / "plain"))
    assert set(served.signatures) == {"serve", "serving_default", "class_names"}
    if keras.backend.backend() == "jax":  # lowered for CPU and CUDA: an export made on a GPU serves on a CPU
        assert lowered_platforms(tmp_path / "plain") == {"CPU", "CUDA"}


def lowered_platforms(folder):
    """The platforms the jax2tf (XlaCallModule) functions of a SavedModel were lowered for."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    return {platform.decode() for graph in proto.meta_graphs for function in graph.graph_def.library.function
            for node in function.node_def if node.op == "XlaCallModule" for platform in node.attr["platforms"].list.s}


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
    def wrong(folder, batch):
        return {"serve": np.ones((len(batch), 3))}, CLASS_NAMES

    monkeypatch.setattr(export_module, "served_outputs", wrong)
    target = tmp_path / "sub" / "exported"
    with pytest.raises(KerasTransferError, match="nothing was written"):
        keras_transfer.export_saved_model(tiny_model(), target)
    assert not os.path.exists(target)
    assert os.listdir(tmp_path / "sub") == []


def test_unknown_format_lists_the_allowed_ones(tmp_path):
    with pytest.raises(KerasTransferError, match="saved_model, tflite") as info:
        export_module.export(tiny_model(), tmp_path / "out", format="onnx")
    assert "Received: format='onnx'" in str(info.value)
    with pytest.raises(KerasTransferError, match="format=.tflite. only"):
        export_module.export(tiny_model(), tmp_path / "out", quantize="dynamic")
    assert os.listdir(tmp_path) == []


def test_a_file_in_the_way_is_reported_before_writing(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(KerasTransferError, match="Cannot write an export into") as info:
        export_module.export(tiny_model(), tmp_path / "a_file" / "exported")
    assert "Received: path=" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_an_unwritable_folder_is_reported_before_writing(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(kt_io.tempfile, "mkdtemp", refuse)  # root ignores chmod: simulate the refusal
    with pytest.raises(KerasTransferError, match="Cannot write an export into .*Permission denied"):
        export_module.export(tiny_model(), tmp_path / "exported")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_reported_before_writing(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(KerasTransferError, match="Cannot write an export into"):
            export_module.export(tiny_model(), locked / "exported")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o755)
