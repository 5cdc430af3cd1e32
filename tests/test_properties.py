"""Property-based hostile inputs (Hypothesis): folder trees, manifests, damaged run folders and CLI numbers.

Properties, for every generated input:
- the library raises nothing but `KerasTransferError` (with its one-line message) on bad input;
- the CLI never shows a traceback: it exits 0, or 2 (bad input) / 1 (failure during work) with one line;
- nothing outside the run folder or the export target is created, changed or removed;
- a run that reported success can be evaluated, predicted with and exported.

Budgets: the `default` profile keeps each property to a few seconds (a handful of examples for the ones that
train or load models); `HYPOTHESIS_PROFILE=nightly` runs many more. The file layer is the same on both backends,
so these run on the first backend only.
"""

import hashlib
import json
import os
import shutil
import string
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from keras_transfer import cli
from keras_transfer.data.sources import find_images
from keras_transfer.data.splits import split_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs import train as train_module
from keras_transfer.runs.config import RunConfig

pytestmark = [pytest.mark.backend_free, pytest.mark.first_backend]  # trains a little: TensorFlow is faster here

settings.register_profile("default", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
FEW = settings(max_examples=int(os.environ.get("KT_FEW_EXAMPLES", 4)))  # properties that train or load models

# Names a user's file system can hold: unicode, spaces, glob and shell characters, quotes, leading dots.
NAME_CHARS = st.sampled_from(list(string.ascii_letters + string.digits + " _-.[]*?{}$;&|'\"!#%+,=@^~()")
                             + ["é", "ß", "猫", "😀", "\u200b"])
NAMES = st.text(NAME_CHARS, min_size=1, max_size=12).filter(lambda s: s not in (".", "..") and "/" not in s)


def _tree_digest(folder):
    """`{relative path: sha1}` of every file under `folder` (symlinks by their target text)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = "link:" + os.readlink(path)
            elif os.path.isfile(path):
                out[rel] = hashlib.sha1(open(path, "rb").read()).hexdigest()
    return out


def _png(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")


def _one_line(err):
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


@st.composite
def folder_trees(draw):
    """`[(class name, [(file name, kind)])]`, kind: png, text (a .png that is text), hidden, other, link."""
    classes = draw(st.lists(NAMES, min_size=0, max_size=4, unique_by=str.lower))
    kinds = st.sampled_from(["png", "png", "png", "text", "hidden", "other", "link"])
    return [(c, draw(st.lists(st.tuples(NAMES, kinds), max_size=4, unique_by=lambda f: f[0].lower())))
            for c in classes]


def _write_tree(root, tree, outside):
    os.makedirs(root)
    for c, (name, files) in enumerate(tree):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i, (file, kind) in enumerate(files):
            path = os.path.join(folder, ("." + file if kind == "hidden" else file) +
                                (".txt" if kind == "other" else ".png"))
            if os.path.exists(path):
                continue
            if kind in ("png", "hidden"):
                _png(path, c * 10 + i)
            elif kind == "text":
                open(path, "w").write("not an image")
            elif kind == "other":
                open(path, "w").write("notes")
            else:
                os.symlink(os.path.join(outside, "outside.png"), path)


@given(tree=folder_trees(), validation_split=st.sampled_from([0.0, 0.2, 0.5]), seed=st.integers(0, 2 ** 32 - 1))
def test_hostile_folder_trees_split_or_say_why(tmp_path_factory, tree, validation_split, seed):
    base = tmp_path_factory.mktemp("tree")
    outside = base / "outside"
    outside.mkdir()
    _png(outside / "outside.png", 99)
    before = _tree_digest(outside)
    root = str(base / "data")
    _write_tree(root, tree, str(outside))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = find_images(root)
    except KerasTransferError as error:
        assert "\n" not in str(error) and "Received:" in str(error)
        return
    splits = split_images(found, validation_split=validation_split, seed=seed)
    listed = [p for s in ("train", "val", "test") for p in splits.paths(s)]
    assert sorted(listed) == sorted(found.paths) and len(set(listed)) == len(listed)
    assert all(os.path.isfile(p) for p in listed) and len(found.class_names) >= 2
    assert all(sum(splits.counts(s).values()) for s in ("train",))
    assert _tree_digest(outside) == before


MANIFEST_LINES = st.lists(st.tuples(
    st.sampled_from(["a/x.png", "b/y.png", "a/missing.png", "../outside.png", "/etc/hostname", "", " a/x.png ",
                     "a\\x.png", "a/x.png\x00"]),
    st.one_of(NAMES, st.sampled_from(["", " ", "1", "01", "label,with,commas", '"quoted"']))), max_size=6)


@given(rows=MANIFEST_LINES, header=st.booleans(), bom=st.booleans(), encoding=st.sampled_from(["utf-8", "latin-1"]),
       fmt=st.sampled_from(["csv", "json"]))
def test_hostile_manifests_load_or_name_the_row(tmp_path_factory, rows, header, bom, encoding, fmt):
    base = tmp_path_factory.mktemp("manifest")
    for name in ("a", "b"):
        os.makedirs(base / name)
    _png(base / "a" / "x.png", 1)
    _png(base / "b" / "y.png", 2)
    manifest = base / f"list.{fmt}"
    if fmt == "csv":
        text = ("path,label\n" if header else "") + "".join(f'"{p}","{label}"\n' for p, label in rows)
    else:
        text = json.dumps([{"path": p, "label": label} for p, label in rows], ensure_ascii=False)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    manifest.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = find_images(str(manifest))
    except KerasTransferError as error:
        assert "\n" not in str(error)
        return
    assert len(found.paths) == len(found.labels) >= 2 and len(found.class_names) >= 2


NUMERIC_FLAGS = ["--epochs", "--fine-tune-epochs", "--batch-size", "--input-size", "--blocks", "--seed",
                 "--validation-split", "--test-split", "--dropout", "--label-smoothing", "--learning-rate",
                 "--fine-tune-learning-rate"]
NUMBERS = st.one_of(st.integers(-2 ** 70, 2 ** 70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "", " ", "1_000", "٣", "1e-400"]))


@given(flags=st.lists(st.tuples(st.sampled_from(NUMERIC_FLAGS), NUMBERS), min_size=1, max_size=4))
def test_cli_numbers_at_and_beyond_their_limits_never_give_a_traceback(tmp_path_factory, capsys, monkeypatch,
                                                                       flags):
    """Every flag value is checked; the run itself is replaced by its check (no training here)."""
    base = tmp_path_factory.mktemp("cli")
    data = base / "data"
    for name in ("a", "b"):
        os.makedirs(data / name)
        _png(data / name / "x.png", 3)
    checked = []
    monkeypatch.setattr(train_module, "run_training", lambda config, out, **kw: checked.append(config.validate()))
    argv = ["train", str(data), "--out", str(base / "run"), "--backbone", "vgg16", "--weights", "none"]
    for flag, value in flags:
        argv += [flag, value]
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own one-line error (type and choice checks)
        code = exit.code
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 0:
        config = checked[0]
        assert (config.epochs is None or 1 <= config.epochs <= 100_000) and 0 <= config.seed < 2 ** 32 and 0 <= config.dropout < 1
        assert 0 <= config.validation_split + config.test_split < 1
    else:
        assert _one_line(err) or (err.startswith("error: ") and err.count("\n") == 1), err
    assert not os.path.exists(base / "run")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import write_image_folder

    base = tmp_path_factory.mktemp("trained")
    data = write_image_folder(base / "data", per_class=4)
    out = str(base / "run")
    assert cli.main(["train", data, "--out", out, "--backbone", "tinyvgg", "--weights", "none", "--input-size", "32",
                     "--strategy", "head_only", "--epochs", "1", "--batch-size", "8", "--augmentation", "none"]) == 0
    return data, out


DAMAGES = st.sampled_from(["truncate", "empty", "garbage", "remove", "json_list", "swap_model"])


@FEW
@given(victim=st.sampled_from(["best.keras", "last.keras", "config.json", "splits.json", "class_names.json",
                               "state.json", "data_fingerprint.json", "history.json"]), damage=DAMAGES,
       command=st.sampled_from(["evaluate", "predict", "export", "resume"]))
def test_a_damaged_run_folder_gives_one_line_and_touches_nothing_else(trained, tmp_path_factory, capsys, victim,
                                                                      damage, command):
    data, source = trained
    base = tmp_path_factory.mktemp("damaged")
    run = str(base / "run")
    shutil.copytree(source, run)
    path = os.path.join(run, victim)
    if damage == "truncate" and os.path.exists(path):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    elif damage == "empty":
        open(path, "wb").close()
    elif damage == "garbage":
        open(path, "wb").write(os.urandom(64))
    elif damage == "remove" and os.path.exists(path):
        os.remove(path)
    elif damage == "json_list":
        open(path, "w").write("[1, 2, 3]")
    elif damage == "swap_model":
        shutil.copy(os.path.join(run, "best.keras" if victim != "best.keras" else "last.keras"), path)
    before = _tree_digest(data)
    argv = {"evaluate": ["evaluate", run], "predict": ["predict", run, data],
            "export": ["export", run, "--out", str(base / "exported")],
            "resume": ["train", "--resume", "--out", run]}[command]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code in (0, 1, 2)
    if code:
        assert _one_line(captured.err), captured.err
    assert _tree_digest(data) == before
    assert set(os.listdir(base)) <= {"run", "exported"}


@FEW
@given(names=st.lists(NAMES, min_size=2, max_size=3, unique_by=str.lower), per_class=st.integers(1, 3))
def test_a_run_that_reported_success_can_be_evaluated_predicted_and_exported(tmp_path_factory, capsys, names,
                                                                             per_class):
    base = tmp_path_factory.mktemp("success")
    data = base / "da[t]a *"
    for c, name in enumerate(names):
        os.makedirs(data / name)
        for i in range(per_class):
            _png(data / name / f"{i} {name}.png", 10 * c + i)
    run = str(base / "r[u]n ?")
    code = cli.main(["train", str(data), "--out", run, "--backbone", "tinyvgg", "--weights", "none", "--input-size",
                     "32", "--strategy", "head_only", "--epochs", "1", "--batch-size", "4", "--augmentation", "none",
                     "--validation-split", "0.0"])
    capsys.readouterr()
    if code != 0:
        return
    assert cli.main(["evaluate", run, str(data)]) == 0
    capsys.readouterr()
    assert cli.main(["predict", run, str(data), "--format", "json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions) == len(names) * per_class
    assert cli.main(["export", run, "--format", "keras", "--out", str(base / "e [1].keras")]) == 0
    assert sorted(os.listdir(base)) == sorted(["da[t]a *", "r[u]n ?", "e [1].keras"])


def test_the_config_check_accepts_exactly_the_documented_ranges():
    """A property the CLI test relies on, checked directly: RunConfig's limits."""
    with pytest.raises(KerasTransferError):
        RunConfig(data_dir=".", weights=None, seed=2 ** 32).validate()
    assert RunConfig(data_dir=".", weights=None, seed=2 ** 32 - 1, input_size=2048).validate().seed == 2 ** 32 - 1
