"""Refuse before any work: every value that can be checked before work starts is refused in one line (exit status
2, no traceback) before a run folder, a report, an export or a demo folder is written; the message names the
option. A property test feeds each command-line option out-of-range values; the cases the issue named (more
devices than the machine or the data has, `--weights none` on a handful of images, `export --atol -1`, the
`--resume` hint) each have a test of their own (more devices than the training images: in
tests/test_distribution.py, whose worker process has the virtual devices that refusal needs).
"""

import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_image_folder
from keras_transfer import cli
from keras_transfer.layout import LAST_MODEL
from keras_transfer.models.classifier import build_classifier
from keras_transfer.runs.train import train_from_folder
from keras_transfer.training.recipes import _collapse_check

BIG = 10 ** 7  # more devices, epochs or images than any machine or run has
NAN = st.sampled_from(["nan", "inf", "-inf"])
NEGATIVE_INT = st.integers(-BIG, 0).map(str)


def _floats(low, high):
    """Texts of numbers outside [low, high] (and NaN, infinities)."""
    outside = st.one_of(st.floats(-1e9, low, exclude_max=True), st.floats(high, 1e9, exclude_min=True))
    return st.one_of(outside.map(repr), NAN)


def _not_in(choices):
    return st.text("abcxyz_", min_size=1, max_size=8).filter(lambda text: text not in choices)


FRACTION = st.one_of(st.floats(-1e9, 0, exclude_max=True).map(repr), st.floats(1, 1e9).map(repr), NAN)
RATE = st.one_of(st.floats(-1e9, 0).map(repr), NAN)
# `train`'s options: (flag, strategy of bad values, the word the error must name)
TRAIN = [
    ("--epochs", st.one_of(NEGATIVE_INT, st.integers(100_001, BIG).map(str)), "epochs"),
    ("--fine-tune-epochs", NEGATIVE_INT, "fine_tune_epochs"),
    ("--batch-size", st.one_of(NEGATIVE_INT, st.integers(65_537, BIG).map(str)), "batch_size"),
    ("--input-size", st.one_of(st.integers(-BIG, 31).map(str), st.integers(2049, BIG).map(str)), "input_size"),
    ("--blocks", NEGATIVE_INT, "--blocks"),
    ("--sequence-length", NEGATIVE_INT, "sequence_length"),
    ("--seed", st.one_of(st.integers(-BIG, -1).map(str), st.just(str(2 ** 32))), "seed"),
    ("--validation-split", FRACTION, "validation_split"),
    ("--test-split", FRACTION, "test_split"),
    ("--label-smoothing", FRACTION, "label_smoothing"),
    ("--dropout", FRACTION, "dropout"),
    ("--learning-rate", RATE, "learning_rate"),
    ("--fine-tune-learning-rate", RATE, "fine_tune_learning_rate"),
    ("--l2sp", RATE, "l2sp"),
    ("--head-l2", st.one_of(st.floats(-1e9, 0, exclude_max=True).map(repr), NAN), "head_l2"),
    ("--layer-decay", _floats(1e-300, 1), "layer_decay"),
    ("--devices", st.one_of(st.just("0"), st.integers(BIG, 2 * BIG).map(str), _not_in(("auto", "all"))), "devices"),
    ("--task", _not_in(("classification", "regression", "multilabel")), "--task"),
    ("--loss", _not_in(("mse", "mae", "huber", "bce", "focal")), "--loss"),
    ("--modality", _not_in(("image", "text")), "--modality"),
    ("--recipe", _not_in(("auto", "two_phase", "lp_ft", "gradual", "scratch")), "--recipe"),
    ("--strategy", _not_in(("head_only", "top_blocks", "from_layer", "full", "gradual")), "--strategy"),
    ("--class-weight", _not_in(("balanced",)), "--class-weight"),
    ("--precision", _not_in(()), "--precision"),
    ("--jit-compile", _not_in(("auto", "true", "false")), "--jit-compile"),
    ("--distribution", _not_in(("data_parallel",)), "--distribution"),
    ("--backbone", _not_in(()), "backbone"),
    ("--augmentation", _not_in(("none", "flip", "light", "geometric")), "augmentation"),
    ("--weights", st.just("missing.weights.h5"), "weights"),
    ("--label-separator", st.sampled_from([",", '"', "||", ""]), "label_separator"),
    ("--cache-dir", st.just("a_file.txt"), "cache_dir"),
    ("--out", st.just("a_file.txt"), "out"),
]
OTHERS = [  # (command and the arguments it needs, flag, bad values, the word the error must name)
    (["evaluate", "run"], "--top-k", NEGATIVE_INT, "--top-k"),
    (["evaluate", "run"], "--worst", st.integers(-BIG, -1).map(str), "--worst"),
    (["evaluate", "run"], "--batch-size", NEGATIVE_INT, "--batch-size"),
    (["evaluate", "run"], "--split", _not_in(("test", "val")), "--split"),
    (["predict", "run", "x.png"], "--top-k", NEGATIVE_INT, "--top-k"),
    (["predict", "run", "x.png"], "--batch-size", st.one_of(NEGATIVE_INT, st.integers(65_537, BIG).map(str)),
     "--batch-size"),
    (["predict", "run", "x.png"], "--format", _not_in(("table", "json", "csv")), "--format"),
    (["export", "run", "--out", "exported"], "--atol", st.one_of(st.floats(-1e9, 0).map(repr), NAN), "atol"),
    (["export", "run", "--out", "exported"], "--format", _not_in(("saved_model", "keras", "tflite")), "format"),
    (["export", "run", "--out", "exported"], "--quantize", _not_in(()), "quantize"),
    (["demo", "--out", "demo"], "--labels-per-class", st.one_of(NEGATIVE_INT, st.integers(63, BIG).map(str)),
     "labels_per_class"),
    (["demo", "--out", "demo"], "--seed", st.one_of(st.integers(-BIG, -1).map(str), st.just(str(2 ** 32))), "seed"),
    (["demo", "--out", "demo"], "--recipe", _not_in(("auto", "two_phase", "lp_ft", "gradual", "scratch")), "--recipe"),
]
CASES = [(["train", "images", "--out", "run"], flag, values, word) for flag, values, word in TRAIN] + OTHERS


def _tree(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, dirs, files in os.walk(folder) for name in dirs + files)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder holding a tiny image folder, a file (for the options that need a folder) and nothing else."""
    folder = tmp_path_factory.mktemp("refusals")
    write_image_folder(folder / "images", classes=("a", "b"), per_class=3, size=8)
    (folder / "a_file.txt").write_text("a file, not a folder")
    return folder


def _run(argv, capsys):
    """`(exit status, stderr)` of the command line `argv` (argparse's own errors exit through SystemExit)."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.err


@settings(max_examples=int(os.environ.get("KT_REFUSAL_EXAMPLES", 3)), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.parametrize("command, flag, values, word", CASES, ids=[f"{c[0][0]}{c[1]}" for c in CASES])
def test_each_option_out_of_range_is_one_line_exit_2_and_nothing_written(workspace, capsys, command, flag, values,
                                                                         word, data):
    value = data.draw(values, label=flag)
    before = _tree(workspace)
    with contextlib.chdir(workspace):
        code, err = _run(command + [f"{flag}={value}"], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert word.replace("-", "_") in lines[0].replace("-", "_"), (word, lines[0])
    assert _tree(workspace) == before  # no run folder, report, export or digits folder


def test_devices_99_is_refused_at_once_without_a_run_folder(workspace, capsys):
    with contextlib.chdir(workspace):
        code, err = _run(["train", "images", "--out", "run99", "--weights", "none", "--devices", "99"], capsys)
    assert code == 2 and err.count("\n") == 1 and "more devices than" in err and "devices=99" in err, err
    assert "--resume" not in err and not os.path.exists(workspace / "run99")


@pytest.mark.backend_free
def test_the_collapse_check_gathers_images_over_one_image_batches_and_skips_below_two():
    x = np.random.default_rng(0).uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    one_image_batches = [(x[i:i + 1], np.zeros(1)) for i in range(6)]  # a 6-image run's batches (batch 1)
    why = []
    [check] = _collapse_check(one_image_batches, why)
    assert check.x.shape == (6, 8, 8, 3) and why == []
    assert _collapse_check([(x[:1], np.zeros(1))], why) == [] and "skipped" in why[0] and "holds 1" in why[0]


def test_weights_none_on_six_training_images_trains(tmp_path):
    """A BatchNorm backbone from random weights, 6 training images in batches of 1: a valid run that the check on
    one batch (one image: no spread) used to stop as collapsed. tinybn (tests/tiny_backbone.py, three BatchNorm
    layers) rather than MobileNetV2 (52): the same check, a fraction of the layers to trace."""
    data = write_image_folder(tmp_path / "six", classes=("a", "b"), per_class=4, size=8)
    model, result = train_from_folder(data, str(tmp_path / "run"), backbone="tinybn", weights=None,
                                      input_size=32, validation_split=0.25, recipe="scratch", epochs=1,
                                      augmentation="none", verbose=0)
    assert result.recipe == "scratch" and os.path.isfile(tmp_path / "run" / LAST_MODEL)


def test_an_unknown_layer_is_refused_before_the_run_folder(workspace, capsys):
    with contextlib.chdir(workspace):
        code, err = _run(["train", "images", "--out", "run_layer", "--weights", "none", "--backbone", "tinyvgg",
                          "--input-size", "32", "--strategy", "from_layer", "--layer", "block9_conv9"], capsys)
    assert code == 2 and err.count("\n") == 1 and "block9_conv9" in err, err
    assert not os.path.exists(workspace / "run_layer")


@pytest.mark.backend_free
def test_the_resume_hint_appears_only_where_a_checkpoint_exists(tmp_path):
    error = RuntimeError("boom")
    line, code = cli.describe(error, "train", str(tmp_path))
    assert code == 1 and "--resume" not in line
    (tmp_path / LAST_MODEL).write_bytes(b"checkpoint")
    assert "Continue with --resume" in cli.describe(error, "train", str(tmp_path))[0]
    assert "--resume" not in cli.describe(error, "evaluate", str(tmp_path))[0]


def test_export_atol_is_refused_before_the_model_is_read(tmp_path, capsys, monkeypatch):
    model = build_classifier("tinyvgg", class_names=["a", "b"], weights=None, input_size=32)
    model.save(tmp_path / "m.keras")
    monkeypatch.setattr(cli.api, "export", lambda *a, **k: pytest.fail("export ran with a bad atol"))
    code, err = _run(["export", str(tmp_path / "m.keras"), "--out", str(tmp_path / "x"), "--atol", "-1"], capsys)
    assert code == 2 and "Received: atol=-1.0" in err and not os.path.exists(tmp_path / "x")
