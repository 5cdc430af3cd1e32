"""`predict`: files and folders of any size and format, probabilities, class names, test-time flips, errors
naming the file, and `keras-transfer predict` in its three formats."""

import csv
import io
import json
import os

import keras
import numpy as np
import pytest
from conftest import randomize_head
from image_files import write_gray_jpeg, write_jpeg, write_png, write_text_as_jpeg

from keras_transfer import build_classifier, predict
from keras_transfer.cli import main
from keras_transfer.errors import KerasTransferError
from keras_transfer.data.images import ImageDecodeError, load_images

NAMES = ["cat", "dog", "emu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder holding only `best.keras`: a vgg16 classifier at 32 px with a random head and class names.
    Built once for the module: `predict` only reads it."""
    keras.utils.set_random_seed(0)
    model = build_classifier("tinyvgg", class_names=NAMES, weights=None, input_size=32, augmentation="none", seed=0)
    randomize_head(model, seed=2)
    run = tmp_path_factory.mktemp("predict") / "run"
    os.makedirs(run)
    model.save(run / "best.keras")
    return str(run)


@pytest.fixture
def inputs(tmp_path):
    """A loose PNG and a folder of a JPEG, a nested grayscale JPEG, a non-image and a hidden file."""
    folder = tmp_path / "photos"
    os.makedirs(folder / "nested")
    loose = write_png(tmp_path / "loose.png", height=40, width=30, seed=1)
    write_jpeg(folder / "b.jpg", height=64, width=64, seed=2)
    write_gray_jpeg(folder / "nested" / "c.jpeg", seed=3)
    write_png(folder / "a.PNG", height=17, width=50, seed=4)
    (folder / "notes.txt").write_text("not an image")
    write_png(folder / ".hidden.png")
    expected = [loose, str(folder / "a.PNG"), str(folder / "b.jpg"), str(folder / "nested" / "c.jpeg")]
    return [loose, str(folder)], expected


def test_predict_files_and_folders(run_dir, inputs):
    given, expected = inputs
    model = keras.saving.load_model(os.path.join(run_dir, "best.keras"))
    raw = model.predict(load_images(expected, 32), verbose=0)
    assert np.ptp(raw, axis=0).max() > 1e-4  # outputs depend on the image

    results = predict(run_dir, given, top_k=3)

    assert [r["path"] for r in results] == expected
    for r, row in zip(results, raw):
        names = [name for name, _ in r["top"]]
        probabilities = [p for _, p in r["top"]]
        assert sorted(names) == NAMES
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert probabilities == pytest.approx([row[NAMES.index(n)] for n in names], abs=1e-5)
    assert [len(r["top"]) for r in predict(model, given, top_k=1)] == [1] * 4
    assert len(predict(model, given[0], top_k=10)[0]["top"]) == 3  # capped at the number of classes


def test_tta_is_the_mean_over_the_image_and_its_mirror(run_dir, inputs):
    _, expected = inputs
    model = keras.saving.load_model(os.path.join(run_dir, "best.keras"))
    x = load_images(expected, 32)
    manual = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    plain = model.predict(x, verbose=0)
    assert np.abs(manual - plain).max() > 1e-5  # the flip changes the outputs, so the test can fail

    results = predict(model, expected, top_k=3, tta=True, batch_size=3)

    for r, row in zip(results, manual):
        assert dict(r["top"]) == pytest.approx(dict(zip(NAMES, row)), abs=1e-5)


def test_sigmoid_head_gives_both_classes_and_class_names_from_the_run_folder(tmp_path, inputs):
    model = build_classifier("tinyvgg", 2, weights=None, input_size=32, augmentation="none")
    randomize_head(model)
    os.makedirs(tmp_path / "run2")
    model.save(tmp_path / "run2" / "best.keras")
    (tmp_path / "run2" / "class_names.json").write_text(json.dumps(["no", "yes"]))
    raw = model.predict(load_images(inputs[1], 32), verbose=0)[:, 0]

    results = predict(str(tmp_path / "run2"), inputs[1])

    for r, p in zip(results, raw):
        assert dict(r["top"]) == pytest.approx({"no": 1 - p, "yes": p}, abs=1e-6)
    assert predict(model, inputs[1][0])[0]["top"][0][0] in ("0", "1")  # no names anywhere: indices


def test_errors_name_what_was_given(run_dir, tmp_path):
    with pytest.raises(KerasTransferError, match="No such file or folder: .*missing.png"):
        predict(run_dir, [str(tmp_path / "missing.png")])
    os.makedirs(tmp_path / "empty")
    with pytest.raises(KerasTransferError, match="No image files found in .*empty"):
        predict(run_dir, str(tmp_path / "empty"))
    bad = write_text_as_jpeg(tmp_path / "bad.jpg")
    with pytest.raises(ImageDecodeError, match="Cannot read image .*bad.jpg"):
        predict(run_dir, [bad], strict=True)
    with pytest.raises(KerasTransferError, match="No model at .*best.keras"):
        predict(str(tmp_path / "empty"), [bad])
    with pytest.raises(KerasTransferError, match="top_k must be a positive int"):
        predict(run_dir, [bad], top_k=0)


def test_cli_predict_formats(run_dir, inputs, capsys):
    given, expected = inputs
    reference = predict(run_dir, given, top_k=2)

    assert main(["predict", run_dir, *given, "--top-k", "2", "--format", "json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in parsed] == expected
    assert [[(t["class"], t["probability"]) for t in r["top"]] for r in parsed] == \
        [[(c, pytest.approx(p)) for c, p in r["top"]] for r in reference]

    assert main(["predict", run_dir, *given, "--top-k", "2", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8 and rows[0]["path"] == expected[0] and rows[1]["rank"] == "2"
    assert rows[0]["class"] == reference[0]["top"][0][0]
    assert float(rows[0]["probability"]) == pytest.approx(reference[0]["top"][0][1], abs=1e-6)

    assert main(["predict", run_dir, *given, "--top-k", "1", "--tta"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[0].split()[0] == expected[0] and lines[0].split()[1] in NAMES

    assert main(["predict", run_dir, "no_such.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No such file or folder: no_such.png") and len(err.strip().splitlines()) == 1


def test_an_unreadable_file_is_named_and_skipped_unless_strict(run_dir, inputs, tmp_path, capsys):
    given, expected = inputs
    bad = write_text_as_jpeg(tmp_path / "bad.jpg")
    results = predict(run_dir, [bad, *given], top_k=1)
    assert results[0] == {"path": bad, "top": [], "skipped": results[0]["skipped"]} and results[0]["skipped"]
    assert [r["path"] for r in results[1:]] == expected and all(r["top"] for r in results[1:])

    assert main(["predict", run_dir, bad, *given, "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert [r["path"] for r in json.loads(captured.out)] == expected
    assert captured.err.startswith(f"skipped {bad}: ")
    assert main(["predict", run_dir, bad, *given, "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot read image") and bad in err and err.count("\n") == 1
    assert main(["predict", run_dir, bad]) == 2
    assert "No readable image among the inputs" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["top_k", "batch_size"])
def test_a_text_run_refuses_a_count_that_is_not_a_positive_int_as_image_runs_do(count):
    run = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "runs_v0_1_0", "text_classification")
    with pytest.raises(KerasTransferError, match=f"{count} must be a positive int. Received: {count}=0"):
        predict(run, ["a short text"], **{count: 0})

