"""Feature caching: the cached head phase trains the same head as the uncached one, on both caches."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import as_numpy, make_small_cnn, make_tiny_xy
from keras_transfer.training.caching import extract_features, train_head_cached
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import build_classifier
from keras_transfer.training.presets import get_preset
from keras_transfer.training.phases import train_phase
from keras_transfer.training.recipes import fine_tune


def _model(augmentation="none", dropout=0.0):
    keras.utils.set_random_seed(0)
    model = build_classifier(make_small_cnn(), 3, input_size=32, augmentation=augmentation, dropout=dropout, seed=0)
    head = model.get_layer("predictions")
    head.set_weights([np.full_like(w, 0.0) for w in head.get_weights()])
    return model


def _dataset(n=12, batch=4):
    x, y = make_tiny_xy(n=n)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _head_weights(model):
    return [as_numpy(w) for w in model.get_layer("predictions").weights]


def test_cached_and_uncached_head_phase_train_the_same_head():
    preset = get_preset("feature_extraction", epochs=2, learning_rate=1e-2)
    plain = _model()
    train_phase(plain, _dataset(), preset=preset, verbose=0)
    cached = _model()
    history = train_head_cached(cached, _dataset(), preset=preset, shuffle=False, verbose=0)
    assert history.epoch == [0, 1]
    for a, b in zip(_head_weights(plain), _head_weights(cached)):
        assert np.abs(a).max() > 0  # the head moved off its zero start
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_disk_cache_equals_memory_cache_and_the_full_model_predicts_like_the_head(tmp_path):
    preset = get_preset("feature_extraction", epochs=1, learning_rate=1e-2)
    memory, disk = _model(), _model()
    train_head_cached(memory, _dataset(), preset=preset, shuffle=False, verbose=0)
    train_head_cached(disk, _dataset(), preset=preset, shuffle=False, verbose=0, cache=str(tmp_path / "cache"))
    assert os.path.getsize(tmp_path / "cache" / "train.features.f32") == 12 * 16 * 4
    for a, b in zip(_head_weights(memory), _head_weights(disk)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    x, y = make_tiny_xy(n=12)
    features = extract_features(disk, (x, y), cache=str(tmp_path / "again"), batch_size=5)
    assert isinstance(features.features, np.memmap) and len(features) == 3
    on_features = as_numpy(disk.get_layer("predictions")(features.features[:]))
    np.testing.assert_allclose(as_numpy(disk.predict(x, verbose=0)), on_features, rtol=1e-4, atol=1e-6)


def test_fine_tune_with_cached_head_phase_keeps_history_val_metrics_and_checkpoint(tmp_path, caplog):
    caplog.set_level("INFO", logger="keras_transfer")
    model = _model(dropout=0.2)
    ckpt, csv = str(tmp_path / "best.keras"), str(tmp_path / "log.csv")
    result = fine_tune(model, _dataset(), _dataset(6, 3), head_epochs=2, fine_tune_epochs=1, unfreeze="full", verbose=0,
                       checkpoint_path=ckpt, csv_path=csv, cache_features=True)
    assert "cached features" in caplog.text
    assert result.phases == ["head", "fine_tune"] and "val_loss" in result.head.history
    assert len(result.history["epoch"]) == 3
    saved = keras.models.load_model(ckpt)
    assert saved.get_layer("backbone") is not None  # the checkpoint holds the full model, not the head
    assert len(open(csv).read().strip().splitlines()) == 4  # header + 3 epochs


def test_caching_with_augmentation_or_unfrozen_backbone_is_refused():
    with pytest.raises(KerasTransferError, match="augmentation"):
        train_head_cached(_model(augmentation="flip"), make_tiny_xy(), verbose=0)
    with pytest.raises(KerasTransferError, match="frozen backbone"):
        train_head_cached(_model(), make_tiny_xy(), preset="fine_tune", verbose=0)
    with pytest.raises(KerasTransferError, match="cache must be"):
        extract_features(_model(), make_tiny_xy(), cache=3)


def test_cli_train_with_cached_features_and_refusal_with_augmentation(tmp_path, capsys):
    from conftest import write_image_folder
    from keras_transfer.cli import main

    data = write_image_folder(tmp_path / "data")
    base = ["train", data, "--recipe", "two_phase", "--backbone", "tinyvgg", "--weights", "none", "--input-size", "32", "--strategy", "head_only",
            "--epochs", "1", "--cache-features", "--jit-compile", "false"]
    assert main(base + ["--out", str(tmp_path / "refused")]) == 2
    assert "augmentation" in capsys.readouterr().err and not os.path.exists(tmp_path / "refused" / "config.json")
    assert main(base + ["--augmentation", "none", "--cache-dir", str(tmp_path / "cache"),
                        "--out", str(tmp_path / "run")]) == 0
    assert "cached features" in capsys.readouterr().out
    config = json.load(open(tmp_path / "run" / "config.json"))["settings"]
    assert config["cache_features"] is True and config["jit_compile"] is False and config["precision"] == "float32"
    assert os.path.exists(tmp_path / "cache" / "train.features.f32")
    assert keras.models.load_model(tmp_path / "run" / "best.keras").get_layer("backbone") is not None


def test_an_interrupted_cached_head_phase_resumes_with_its_optimizer_state(tmp_path, monkeypatch):
    """The head model trains with the full model's optimizer, so last.keras holds the state that trained: a
    resumed cached phase continues it (its step count goes on from where it stopped, not from zero)."""
    from conftest import write_image_folder
    from keras_transfer.training import state as checkpoints

    from keras_transfer.runs.resume import resume_run
    from keras_transfer.runs.train import train_from_folder

    data = write_image_folder(tmp_path / "data")
    settings = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, strategy="head_only", epochs=3, batch_size=4,
                    augmentation="none", cache_features=True, verbose=0)
    train_from_folder(data, str(tmp_path / "whole"), **settings)
    whole = json.load(open(tmp_path / "whole" / "state.json"))

    class Killed(Exception):
        pass

    on_epoch_end = checkpoints.TrainingState.on_epoch_end

    def dies_after_epoch_1(self, epoch, logs=None):
        on_epoch_end(self, epoch, logs)
        if epoch == 1:
            raise Killed()

    monkeypatch.setattr(checkpoints.TrainingState, "on_epoch_end", dies_after_epoch_1)
    with pytest.raises(Killed):
        train_from_folder(data, str(tmp_path / "cut"), **settings)
    cut = json.load(open(tmp_path / "cut" / "state.json"))
    saved = keras.models.load_model(tmp_path / "cut" / "last.keras")
    assert cut["epochs_done"] == 2 and int(as_numpy(saved.optimizer.iterations)) == cut["iterations"] > 0
    monkeypatch.setattr(checkpoints.TrainingState, "on_epoch_end", on_epoch_end)

    resume_run(str(tmp_path / "cut"), verbose=0)
    resumed = json.load(open(tmp_path / "cut" / "state.json"))
    assert [row["epoch"] for row in resumed["history"]] == [0, 1, 2]
    assert 3 * cut["iterations"] == 2 * whole["iterations"]  # two of three epochs' steps before the cut
    assert resumed["iterations"] == whole["iterations"]  # a fresh optimizer would count only the last epoch


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_tf_dataset_gives_the_pydatasets_batches_in_the_same_seeded_order(tmp_path, on_disk):
    """TensorFlow trains the head from `as_tf_dataset`, JAX from the `PyDataset`: the same batches, epoch by epoch."""
    x, y = make_tiny_xy(n=11)
    cached = extract_features(_model(), (x, y), batch_size=4, shuffle=True, seed=7,
                              cache=str(tmp_path / "cache") if on_disk else "memory")
    dataset = cached.as_tf_dataset()
    for epoch in range(3):
        from_tf = [tuple(as_numpy(t) for t in batch) for batch in dataset]
        assert len(from_tf) == len(cached) == 3
        for i, (features, labels) in enumerate(from_tf):
            np.testing.assert_array_equal(features, cached[i][0])
            np.testing.assert_array_equal(labels, cached[i][1])
        cached.on_epoch_end()
    assert sorted(np.concatenate([b[1] for b in from_tf]).tolist()) == sorted(y.tolist())


def test_head_batch_size_is_opt_in_and_checked():
    preset = get_preset("feature_extraction", epochs=1, learning_rate=1e-2)
    history = train_head_cached(_model(), _dataset(), preset=preset, head_batch_size=12, verbose=0)
    assert history.params["steps"] == 1  # 12 images, one batch of 12 (the source's batches are 4)
    with pytest.raises(KerasTransferError, match="head_batch_size"):
        train_head_cached(_model(), _dataset(), preset=preset, head_batch_size=0, verbose=0)
