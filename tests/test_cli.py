"""The `keras-transfer` command, called in-process through `cli.main` (and once as a real console script).

Training runs are tiny: `tinyvgg` (tests/tiny_backbone.py) at 32 px with random weights, 3 classes x 6 images, 1 epoch a phase.
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import pytest

import keras_transfer
from keras_transfer import cli
from keras_transfer.errors import KerasTransferError
from conftest import write_image_folder

TINY = ["--recipe", "two_phase", "--backbone", "tinyvgg", "--weights", "none", "--input-size", "32", "--epochs", "1",
        "--fine-tune-epochs", "1", "--batch-size", "4"]


def train_args(data_dir, out, *extra):
    return ["train", str(data_dir), *TINY, "--out", str(out), *extra]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def assert_one_line_error(code, captured, *fragments):
    """The CLI's bad-input contract: exit status 2, one `error: ...` line on stderr, no traceback."""
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- backbones --------------------------------------------------------------------------------------------


@pytest.mark.backend_free
def test_backbones_table_lists_every_registry_entry_with_its_min_size(capsys):
    assert cli.main(["backbones"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.strip().splitlines()[1:]}
    specs = keras_transfer.list_backbones()
    assert set(rows) == {spec.name for spec in specs}
    for spec in specs:
        # name, family, preprocess, default, min, params, blocks...
        assert rows[spec.name][3] == str(spec.default_size), rows[spec.name]
        assert rows[spec.name][4] == str(spec.min_size), rows[spec.name]
    assert out.splitlines()[0].split()[:5] == ["name", "family", "preprocess", "default", "min"]


@pytest.mark.backend_free
@pytest.mark.first_backend  # 15 s: in the first process, which ended 35 s before the second (CI of 90b6e40)
def test_console_script_backbones_runs_in_a_real_process():
    script = shutil.which("keras-transfer")
    command = [script] if script else [sys.executable, "-m", "keras_transfer_launcher"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    done = subprocess.run(command + ["backbones"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    # TensorFlow's C++ start-up lines (oneDNN notice, CUDA stub, absl's pre-init warning) are not shown
    assert done.stderr == "", done.stderr
    vgg16 = next(line for line in done.stdout.splitlines() if line.startswith("vgg16 "))
    assert vgg16.split()[1:5] == ["VGG", "caffe", "224", "32"]
    assert "block1 block2 block3 block4 block5" in vgg16


# --- train: the run folder --------------------------------------------------------------------------------


def test_train_writes_a_complete_run_folder(image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_args(image_folder, out)) == 0
    assert f"Run folder: {out}" in capsys.readouterr().out
    class_names = sorted(os.listdir(image_folder))

    config = read_json(out / "config.json")
    assert config["settings"]["backbone"] == "tinyvgg"
    assert config["settings"]["input_size"] == 32
    assert config["settings"]["weights"] is None
    assert config["settings"]["strategy"] == "top_blocks"
    assert config["environment"]["keras_backend"] == keras.backend.backend()

    history = read_json(out / "history.json")
    assert history["phase"] == ["head", "fine_tune"]
    assert history["epoch"] == [0, 1]
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2

    with open(out / "history.csv") as f:
        csv_lines = f.read().strip().splitlines()
    assert csv_lines[0].split(",")[0] == "epoch"
    assert "loss" in csv_lines[0].split(",")
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["0", "1"]

    assert read_json(out / "class_names.json") == class_names

    model = keras.saving.load_model(out / "best.keras")
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, len(class_names))
    assert keras_transfer.get_class_names(model) == class_names


def test_train_head_only_runs_only_head_phases(image_folder, tmp_path):
    out = tmp_path / "run"
    assert cli.main(train_args(image_folder, out, "--strategy", "head_only")) == 0
    history = read_json(out / "history.json")
    assert history["phase"] == ["head"]
    assert read_json(out / "config.json")["settings"]["strategy"] == "head_only"
    assert os.path.isfile(out / "best.keras")


# --- train: bad input, one line and exit status 2 ---------------------------------------------------------


@pytest.mark.backend_free
def test_unknown_backbone_suggests_the_close_name(image_folder, tmp_path, capsys):
    args = train_args(image_folder, tmp_path / "run")
    args[args.index("tinyvgg")] = "mobilnetv2"
    line = assert_one_line_error(cli.main(args), capsys.readouterr(), "'mobilnetv2'", "Did you mean 'mobilenetv2'?")
    assert "keras-transfer backbones" in line


@pytest.mark.backend_free
def test_input_size_below_the_backbone_minimum_names_the_minimum(image_folder, tmp_path, capsys):
    args = train_args(image_folder, tmp_path / "run")
    args[args.index("tinyvgg")] = "inceptionv3"
    assert_one_line_error(cli.main(args), capsys.readouterr(), "inceptionv3", "75", "input_size=32")


@pytest.mark.backend_free
def test_missing_data_folder(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert_one_line_error(cli.main(train_args(missing, tmp_path / "run")), capsys.readouterr(),
                          "not found", str(missing))
    assert not os.path.exists(tmp_path / "run")


def test_empty_class_folder_is_named_and_left_out(image_folder, tmp_path, capsys):
    os.makedirs(os.path.join(image_folder, "zebra"))
    code = cli.main(train_args(image_folder, tmp_path / "run", "--strategy", "head_only"))
    out = capsys.readouterr().out
    assert code == 0
    assert "Class left out: zebra (empty folder)" in out  # the printed data summary names it
    assert read_json(tmp_path / "run" / "class_names.json") == ["cat", "dog", "emu"]
    dropped = read_json(tmp_path / "run" / "data_summary.json")["dropped_classes"]
    assert dropped == [{"class": "zebra", "reason": "empty folder"}]


@pytest.mark.backend_free
def test_a_single_readable_class_is_refused(tmp_path, capsys):
    write_image_folder(tmp_path / "images", classes=("cat",))
    os.makedirs(tmp_path / "images" / "dog")
    assert_one_line_error(cli.main(train_args(tmp_path / "images", tmp_path / "run")), capsys.readouterr(),
                          "at least two classes", "cat", "dog")
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.backend_free
def test_missing_weights_file(image_folder, tmp_path, capsys):
    weights = tmp_path / "nowhere.weights.h5"
    args = train_args(image_folder, tmp_path / "run")
    args[args.index("none")] = str(weights)
    assert_one_line_error(cli.main(args), capsys.readouterr(), "not found", str(weights))


def test_out_folder_holding_a_run_is_refused_without_overwrite(image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"backbone": "resnet50"}')
    assert_one_line_error(cli.main(train_args(image_folder, out)), capsys.readouterr(),
                          str(out), "--overwrite")
    assert read_json(out / "config.json") == {"backbone": "resnet50"}  # the earlier run is untouched


# Input size and weights are checked when the model is built: a run rejected there must leave no config.json
# behind, or the corrected retry would be refused as "already holds a run".
@pytest.mark.backend_free
@pytest.mark.parametrize("flag, bad", [("--input-size", "4"), ("--weights", "missing.weights.h5")])
def test_rejected_run_leaves_no_run_behind(image_folder, tmp_path, capsys, flag, bad):
    out = tmp_path / "run"
    args = train_args(image_folder, out)
    args[args.index(flag) + 1] = bad
    assert_one_line_error(cli.main(args), capsys.readouterr())
    assert not os.path.exists(out / "config.json")


@pytest.mark.backend_free
def test_debug_reraises_the_error(tmp_path):
    with pytest.raises(KerasTransferError, match="not found"):
        cli.main(["--debug"] + train_args(tmp_path / "no_such_folder", tmp_path / "run"))
