"""Hostile paths, damaged run folders, shared files and odd failures: nothing lost, one line, never a traceback."""

import errno
import json
import os
import stat
import textwrap
import zipfile

import keras
import numpy as np
import pytest

from conftest import one_convolution_backbone
from keras_transfer import cli, io
from keras_transfer.errors import DamagedFileError, KerasTransferError, WorkFailedError
from keras_transfer.models.classifier import build_classifier
from keras_transfer.models.saving import load_keras_file
from keras_transfer.runs.train import train_from_folder
from keras_transfer.serving import export as export_module, loading
from keras_transfer.training.callbacks import NonFiniteLossError
from keras_transfer.training.presets import get_preset
from keras_transfer.training.phases import run_phases
from keras_transfer.training.state import TrainingState

# `tinyvgg` (tests/tiny_backbone.py): what these runs meet (hostile files, folders, signals) is not about the network
SMALL = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, epochs=1, batch_size=8,
             augmentation="none", strategy="head_only", verbose=0)
DEAD_PID = 2 ** 22 + 12345  # above Linux's default pid_max: no process has it


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --- the file layer ------------------------------------------------------------------------------------------


@pytest.mark.backend_free
def test_final_files_and_folders_get_the_umask_modes(tmp_path, umask_022):
    io.write_json(tmp_path / "a.json", {"a": 1})
    with io.atomic_folder(tmp_path / "exported") as tmp:
        io.write_text(os.path.join(tmp, "inside.txt"), "x")
    assert _mode(tmp_path / "a.json") == 0o644
    assert _mode(tmp_path / "exported") == 0o755 and _mode(tmp_path / "exported" / "inside.txt") == 0o644
    os.umask(0o077)
    io.write_json(tmp_path / "private.json", {})
    assert _mode(tmp_path / "private.json") == 0o600


@pytest.mark.backend_free
def test_only_stale_temporaries_of_keras_transfer_are_removed(tmp_path):
    names = [f".tmp-{DEAD_PID}-abcd_123.keras", f".tmp-{os.getpid()}-live0001.json", ".tmp-old01234.json",
             ".export-x1y2z3w4", ".tmp-notours", "notes.txt", f".tmp-{DEAD_PID}-abc"]
    for name in names:
        (tmp_path / name).mkdir() if name.startswith(".export") else (tmp_path / name).write_text("x")
    removed = io.remove_temp_files(tmp_path)
    assert removed == sorted([f".tmp-{DEAD_PID}-abcd_123.keras", ".tmp-old01234.json", ".export-x1y2z3w4"])
    assert sorted(os.listdir(tmp_path)) == sorted([f".tmp-{os.getpid()}-live0001.json", ".tmp-notours", "notes.txt",
                                                  f".tmp-{DEAD_PID}-abc"])


@pytest.mark.backend_free
def test_a_full_disk_names_the_file_and_resume(tmp_path, monkeypatch):
    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    io.write_text(tmp_path / "kept.json", "old")
    monkeypatch.setattr(io, "_fsync", full)
    with pytest.raises(WorkFailedError) as info:
        io.write_text(tmp_path / "kept.json", "new")
    message = str(info.value)
    assert str(tmp_path / "kept.json") in message and "--resume" in message and "Errno 28" in message
    assert (tmp_path / "kept.json").read_text() == "old" and os.listdir(tmp_path) == ["kept.json"]


@pytest.mark.backend_free
@pytest.mark.parametrize("content", [b"", b"{\"a\": ", b"\xff\xfe garbage", b"[1, 2"])
def test_damaged_json_is_named(tmp_path, content):
    (tmp_path / "splits.json").write_bytes(content)
    with pytest.raises(DamagedFileError, match="splits.json is damaged"):
        io.read_json(tmp_path / "splits.json")


@keras.saving.register_keras_serializable(package="test_hostile")
class RefusesToLoad(keras.layers.Layer):
    """A layer whose saved config cannot be read back, as a layer changed between save and load."""

    def call(self, x):
        return x

    @classmethod
    def from_config(cls, config):
        raise TypeError("the inner cause of the failed load")  # Keras wraps a TypeError with the whole config


def test_a_model_that_cannot_be_rebuilt_is_named_with_the_inner_cause(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(RefusesToLoad()(inputs)))
    model.save(tmp_path / "m.keras")
    with pytest.raises(DamagedFileError, match="the inner cause of the failed load") as caught:
        load_keras_file(tmp_path / "m.keras")
    assert "config=" not in str(caught.value)  # not the model's whole config, which would push the cause out


# --- a run folder whose path holds glob characters ------------------------------------------------------------


def test_a_run_folder_named_with_glob_characters_leaves_its_neighbour_alone(image_folder, tmp_path, umask_022):
    neighbour = tmp_path / "g" / "a"
    neighbour.mkdir(parents=True)
    for name in ("phase_best-0.npz", "last.keras", f".tmp-{DEAD_PID}-abcdefgh.keras"):
        (neighbour / name).write_bytes(b"the other run's file")
    before = _snapshot(neighbour)
    out = str(tmp_path / "g" / "[a]")

    train_from_folder(image_folder, out, **SMALL)
    train_from_folder(image_folder, out, overwrite=True, **SMALL)

    assert _snapshot(neighbour) == before
    assert {_mode(os.path.join(out, name)) for name in os.listdir(out)} == {0o644}  # shareable, as umask says


# --- damaged run folders and odd failures through the CLI -----------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from conftest import write_image_folder

    root = tmp_path_factory.mktemp("hostile")
    data = write_image_folder(root / "data")
    out = str(root / "run")
    train_from_folder(data, out, **{**SMALL, "epochs": 2})
    return data, out


def _copy_run(trained_run, tmp_path):
    import shutil

    data, out = trained_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    return data, str(copy)


@pytest.mark.parametrize("name, damage", [("best.keras", "truncate"), ("best.keras", "garbage"),
                                          ("class_names.json", "garbage")])
def test_cli_on_a_damaged_model_file_says_which_file_in_one_line(trained_run, tmp_path, capsys, name, damage):
    data, out = _copy_run(trained_run, tmp_path)
    path = os.path.join(out, name)
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        open(path, "wb").write(b"\x00 not what it says \xff")
    if name == "class_names.json":  # read only when the model has no names: use a model without them
        model = keras.saving.load_model(os.path.join(out, "best.keras"))
        model.get_layer("predictions").class_names = None
        model.save(os.path.join(out, "best.keras"))
    for argv in (["predict", out, data], ["evaluate", out], ["export", out, "--out", str(tmp_path / "x")]):
        assert cli.main(argv) == 2
        err = _one_line_error(capsys)
        assert name in err and "damaged" in err


@pytest.mark.parametrize("name", ["last.keras", "config.json", "splits.json"])
def test_resume_from_a_damaged_run_file_says_what_to_do(trained_run, tmp_path, capsys, name):
    data, out = _copy_run(trained_run, tmp_path)
    path = os.path.join(out, name)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    assert cli.main(["train", "--resume", "--out", out]) == 2
    err = _one_line_error(capsys)
    assert name in err
    if name == "last.keras":
        assert "--resume cannot continue" in err and "best.keras" in err and "--overwrite" in err


def test_a_keras_file_holding_a_lambda_is_refused_by_safe_mode_in_one_line(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    assert cli.main(["predict", path, str(tmp_path)]) == 2
    err = _one_line_error(capsys)
    assert "safe mode" in err and "lambda.keras" in err


def test_an_unexpected_failure_is_one_line_with_exit_1(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("something deep\nwent wrong")

    monkeypatch.setitem(cli.COMMANDS, "backbones", boom)
    assert cli.main(["backbones"]) == 1
    err = _one_line_error(capsys)
    assert "RuntimeError: something deep went wrong" in err and "--debug" in err
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "backbones"])


def test_evaluate_into_a_read_only_folder_fails_before_the_work(trained_run, tmp_path, monkeypatch, capsys):
    _, out = trained_run

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before the report folder was checked")

    monkeypatch.setattr(io.tempfile, "mkdtemp", refuse)  # root ignores chmod: simulate the refusal
    monkeypatch.setattr(loading, "load_model", no_work)
    assert cli.main(["evaluate", out, "--out", str(tmp_path / "reports")]) == 2
    assert "Cannot write the report" in _one_line_error(capsys)


def test_nan_on_the_first_epoch_names_no_checkpoint_that_does_not_exist(tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model = build_classifier(one_convolution_backbone(), 3, augmentation="none")
    head = [("head", get_preset("feature_extraction", epochs=1, optimizer="sgd", learning_rate=1e39))]  # inf
    with pytest.raises(NonFiniteLossError) as info:
        run_phases(model, (x, np.arange(8) % 3), None, head, state=TrainingState(str(tmp_path)), verbose=0)
    message = str(info.value)
    assert "No epoch had finished, so no checkpoint was written." in message
    assert "best.keras" not in message and "last.keras" not in message
    assert info.value.exit_code == 1 and isinstance(info.value, KerasTransferError)


def test_a_killed_export_leaves_nothing_behind_after_the_next_export(tmp_path):
    stale = tmp_path / f".tmp-{DEAD_PID}-abcdefgh"  # what a SIGKILL mid-export leaves
    stale.mkdir()
    (stale / "saved_model.pb").write_bytes(b"x" * 1000)
    mine = tmp_path / "notes.txt"
    mine.write_text("keep")
    inputs = keras.Input((32, 32, 3))
    model = build_classifier(keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)), class_names=["a", "b"],
                             augmentation=None)
    export_module.export(model, tmp_path / "model.keras", format="keras")
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "notes.txt"]
    assert zipfile.is_zipfile(tmp_path / "model.keras")


def test_resume_refuses_data_whose_content_changed_under_the_same_names(tmp_path, capsys):
    from conftest import write_image_folder

    data = write_image_folder(tmp_path / "data")
    out = str(tmp_path / "run")
    train_from_folder(data, out, **SMALL)
    victim = os.path.join(data, "dog", "img_2.png")
    from PIL import Image

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(victim)  # same name, other pixels
    assert cli.main(["train", "--resume", "--out", out]) == 2
    err = _one_line_error(capsys)
    assert "content of 1 data file(s) changed" in err and victim in err


@pytest.mark.backend_free
def test_a_file_name_that_is_not_utf8_is_named_and_skipped(image_folder):
    from keras_transfer.data.sources import find_images

    odd = os.path.join(os.fsencode(image_folder), b"cat", b"\xff\xfe odd.png")
    with open(os.path.join(image_folder, "cat", "img_0.png"), "rb") as f, open(odd, "wb") as g:
        g.write(f.read())
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        found = find_images(image_folder)
    assert len(found.paths) == 18 and [reason for _, reason in found.skipped] == [
        "its name is not valid UTF-8 (rename the file)"]


@pytest.mark.backend_free
@pytest.mark.parametrize("content, fragment", [
    ("\ufeffpath,label\ncat/img_0.png,cat\ndog/img_0.png,dog\n".encode("utf-8"), None),  # a BOM is fine
    ("cat/caf\xe9.png,cat\n".encode("latin-1"), "not UTF-8 text"),
    (b'cat/img_0.png,"cat\n', None),  # an unclosed quote: csv reads to the end, then the row is named
])
def test_manifest_encodings(image_folder, content, fragment):
    from keras_transfer.data.sources import find_images

    manifest = os.path.join(image_folder, "list.csv")
    open(manifest, "wb").write(content)
    if fragment is None and content.startswith(b"\xef\xbb\xbf"):
        assert find_images(manifest).class_names == ["cat", "dog"]
        return
    with pytest.raises(KerasTransferError) as info:
        find_images(manifest)
    assert "list.csv" in str(info.value) and (fragment is None or fragment in str(info.value))


def test_a_keras_file_needs_keras_transfer_imported_exactly_as_the_readme_says(trained_run):
    import subprocess
    import sys

    _, out = trained_run
    # One new interpreter for both loads (each process pays Keras's start-up): first without keras_transfer
    # imported, then after `import keras_transfer`.
    script = textwrap.dedent("""
        import sys
        import keras
        imported = "keras_transfer" in sys.modules
        try:
            keras.saving.load_model(sys.argv[1])
            print("without: loaded")
        except Exception as error:
            print("without: failed: " + " ".join(str(error).split()))
        import keras_transfer
        keras.saving.load_model(sys.argv[1])
        print("after: loaded" if not imported else "after: keras_transfer was imported before the first load")
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, os.path.join(out, "best.keras")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    without, after = done.stdout.strip().splitlines()[-2:]
    assert without.startswith("without: failed: ") and "ImagePreprocessing" in without, without
    assert after == "after: loaded", after


def test_data_moved_away_mid_run_fails_in_one_line_and_resumes_once_it_is_back(tmp_path, capsys, monkeypatch):
    from conftest import write_image_folder

    from keras_transfer.training import state as state_module

    data = write_image_folder(tmp_path / "data")
    away = str(tmp_path / "moved")
    out = str(tmp_path / "run")
    on_epoch_end = state_module.TrainingState.on_epoch_end

    def move_data_after_epoch_1(self, epoch, logs=None):
        on_epoch_end(self, epoch, logs)
        if epoch == 0:
            os.rename(data, away)

    monkeypatch.setattr(state_module.TrainingState, "on_epoch_end", move_data_after_epoch_1)
    argv = ["train", data, "--out", out, "--backbone", "tinyvgg", "--weights", "none", "--input-size", "32", "--recipe",
            "two_phase", "--strategy", "head_only", "--epochs", "2", "--batch-size", "8", "--augmentation", "none"]
    assert cli.main(argv) == 1
    err = _one_line_error(capsys)
    assert "train failed" in err and "--resume" in err
    monkeypatch.setattr(state_module.TrainingState, "on_epoch_end", on_epoch_end)
    os.rename(away, data)
    assert cli.main(["train", "--resume", "--out", out]) == 0
    with open(os.path.join(out, "history.json")) as f:
        assert len(json.load(f)["epoch"]) == 2
