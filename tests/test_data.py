"""Loading labelled images: load_image_folder's contract (names, counts, the split, pixel range and size,
the errors); find_images on folders, train/val/test layouts, CSV/JSON manifests and damaged files; the
stratified seeded split; the data summary; class weights; and train_from_folder / `keras-transfer train`
on a folder full of odd files."""

import json
import os
import shutil
import warnings

import numpy as np
import pytest
from conftest import FOLDER_CLASSES, IMAGES_PER_CLASS, write_image_folder
from image_files import write_messy_folder, write_text_as_jpeg

from keras_transfer import cli
from keras_transfer.data.sources import LabelledImages, find_images, load_image_folder
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.train import train_from_folder
from keras_transfer.data.splits import class_weights, split_images, summarize

TOTAL = len(FOLDER_CLASSES) * IMAGES_PER_CLASS


def _examples(dataset):
    """[(label, image)] in iteration order."""
    out = []
    for images, labels in dataset:
        out.extend(zip(np.asarray(labels).tolist(), np.asarray(images)))
    return out


@pytest.mark.backend_free
def test_class_names_counts_and_sizes(image_folder):
    data = load_image_folder(image_folder, image_size=16, batch_size=4, validation_split=0.2, seed=7)

    assert data.class_names == sorted(FOLDER_CLASSES)
    assert data.num_classes == len(FOLDER_CLASSES)
    assert data.counts == {name: IMAGES_PER_CLASS for name in FOLDER_CLASSES}
    train, val = _examples(data.train), _examples(data.val)
    assert len(train) + len(val) == TOTAL
    assert 0 < len(val) < len(train)
    labels = [label for label, _ in train + val]
    assert sorted(set(labels)) == list(range(len(FOLDER_CLASSES)))
    assert [labels.count(k) for k in range(3)] == [IMAGES_PER_CLASS] * 3


@pytest.mark.backend_free
def test_images_are_raw_floats_at_the_requested_size(image_folder):
    data = load_image_folder(image_folder, image_size=16, batch_size=4, validation_split=0.2)
    images, labels = next(iter(data.train))
    images = np.asarray(images)
    assert images.shape[1:] == (16, 16, 3) and 1 <= images.shape[0] <= 4
    assert images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    assert images.max() > 1.5  # not rescaled to [0, 1]
    assert np.asarray(labels).dtype.kind == "i"


@pytest.mark.backend_free
def test_the_same_seed_gives_the_same_split(image_folder):
    first = load_image_folder(image_folder, image_size=16, batch_size=4, seed=11)
    second = load_image_folder(image_folder, image_size=16, batch_size=4, seed=11)
    for a, b in [(first.val, second.val), (first.train, second.train)]:
        a, b = _examples(a), _examples(b)
        assert [label for label, _ in a] == [label for label, _ in b]
        for (_, image_a), (_, image_b) in zip(a, b):
            np.testing.assert_array_equal(image_a, image_b)


@pytest.mark.backend_free
def test_train_and_val_do_not_overlap(image_folder):
    data = load_image_folder(image_folder, image_size=20, batch_size=4, seed=3)  # native size: no resampling
    train = {image.tobytes() for _, image in _examples(data.train)}
    val = {image.tobytes() for _, image in _examples(data.val)}
    assert len(train) + len(val) == TOTAL and not train & val


@pytest.mark.backend_free
def test_no_validation_split(image_folder):
    data = load_image_folder(image_folder, image_size=16, batch_size=32, validation_split=0)
    assert data.val is None
    assert len(_examples(data.train)) == TOTAL


@pytest.mark.backend_free
def test_non_images_and_hidden_folders_are_ignored(image_folder):
    with open(os.path.join(image_folder, "cat", "notes.txt"), "w") as f:
        f.write("not an image")
    os.makedirs(os.path.join(image_folder, ".cache"))
    found = find_images(image_folder)
    assert found.class_names == list(FOLDER_CLASSES) and found.labels == [i for i in range(len(FOLDER_CLASSES))
                                                                    for _ in range(IMAGES_PER_CLASS)]


@pytest.mark.backend_free
def test_a_missing_folder(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(KerasTransferError) as info:
        load_image_folder(missing, image_size=16)
    assert missing in str(info.value)


@pytest.mark.backend_free
def test_one_class_only(image_folder):
    for name in FOLDER_CLASSES[1:]:
        shutil.rmtree(os.path.join(image_folder, name))
    with pytest.raises(KerasTransferError) as info:
        load_image_folder(image_folder, image_size=16)
    message = str(info.value)
    assert "at least two" in message and "found 1 (cat)" in message


@pytest.mark.backend_free
def test_an_empty_class_folder_is_skipped_with_a_warning_naming_it(image_folder):
    os.makedirs(os.path.join(image_folder, "fox"))
    with pytest.warns(UserWarning, match="'fox'.*empty folder"):
        data = load_image_folder(image_folder, image_size=16)
    assert data.class_names == sorted(FOLDER_CLASSES)
    assert data.summary.dropped_classes == [{"class": "fox", "reason": "empty folder"}]


@pytest.mark.backend_free
@pytest.mark.parametrize("split", [1.0, -0.1])
def test_a_bad_validation_split(image_folder, split):
    with pytest.raises(KerasTransferError, match=f"Received: validation_split={split}"):
        load_image_folder(image_folder, image_size=16, validation_split=split)


# find_images: folders, layouts, manifests, damaged files ------------------------------------------------


def _quiet_find(source, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_images(source, **kwargs)


@pytest.mark.backend_free
def test_find_images_skips_non_images_and_ignores_hidden_files_reading_headers_only(tmp_path):
    """The scan reads headers: a file that is no image at all is skipped and named now; a damaged body
    (corrupt.jpg, truncated.png) has a valid header, so it is found when the pipeline decodes it."""
    root, bad = write_messy_folder(tmp_path / "messy")
    not_an_image = [path for path in bad if path.endswith("text.jpg")]
    with pytest.warns(UserWarning) as record:
        found = find_images(root)
    messages = " ".join(str(w.message) for w in record)
    assert "'empty'" in messages and not_an_image[0] in messages
    assert found.class_names == ["cat", "dog"]
    assert sorted(path for path, _ in found.skipped) == not_an_image
    assert found.ignored == 5  # notes.txt, .hidden.png, the .thumbs folder, README.txt, .DS_Store
    assert not any("/." in p or p.endswith(".txt") for p in found.paths)
    assert len(found.paths) == 5 + 6 and all(os.path.isabs(p) for p in found.paths)
    assert set(bad) - set(not_an_image) <= set(found.paths)
    assert [found.labels[found.paths.index(p)] for p in found.paths if "/dog/" in p] == [1] * 6
    assert found.dropped == [("empty", "empty folder")] and found.splits is None
    readers = dict(zip((os.path.basename(p) for p in found.paths), found.readers))
    assert readers == {"ok_0.png": "png", "ok_1.png": "png", "ok_2.png": "png", "rgba.png": "png",
                       "corrupt.jpg": "jpeg", "ok_0.jpg": "jpeg", "ok_1.jpg": "jpeg", "ok_2.jpg": "jpeg",
                       "gray.jpg": "jpeg", "deep.png": "pil", "truncated.png": "png"}


@pytest.mark.backend_free
def test_strict_lists_every_bad_file(tmp_path):
    root, bad = write_messy_folder(tmp_path / "messy")
    with pytest.raises(KerasTransferError) as info:
        find_images(root, strict=True)
    message = str(info.value)
    assert all(path in message for path in bad) and "Received: strict=True" in message


@pytest.mark.backend_free
def test_a_class_whose_files_are_all_bad_is_dropped_unless_too_few_remain(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=2)
    for name in os.listdir(os.path.join(root, "c")):
        write_text_as_jpeg(os.path.join(root, "c", name))
    found = _quiet_find(root)
    assert found.class_names == ["a", "b"] and found.dropped == [("c", "no readable image")]
    shutil.rmtree(os.path.join(root, "b"))
    with pytest.raises(KerasTransferError) as info:
        _quiet_find(root)
    assert "at least two classes" in str(info.value) and "found 1 (a)" in str(info.value)


@pytest.mark.backend_free
def test_train_val_test_layout_is_used_as_it_is(tmp_path):
    root = tmp_path / "layout"
    for split, per_class in (("train", 3), ("val", 2), ("test", 1)):
        write_image_folder(root / split, classes=("a", "b"), per_class=per_class, seed=len(split))
    found = find_images(str(root))
    assert found.kind == "layout" and found.class_names == ["a", "b"]
    splits = split_images(found, validation_split=0.5, test_split=0.3, seed=0)  # fractions unused
    assert {s: sum(splits.counts(s).values()) for s in ("train", "val", "test")} == {"train": 6, "val": 4, "test": 2}
    assert all(f"/{s}/" in p for s in ("train", "val", "test") for p in splits.paths(s))
    data = load_image_folder(str(root), image_size=8, batch_size=4)
    assert sum(int(np.asarray(y).shape[0]) for _, y in data.test) == 2
    assert data.summary.kind == "layout" and data.summary.validation_split is None
    shutil.rmtree(root / "val")
    shutil.rmtree(root / "test")
    # train/ alone: the missing splits are carved out of it by their fractions, stratified (it was silently
    # trained with no validation and no test data)
    alone = split_images(find_images(str(root)), validation_split=0.34, test_split=0.34, seed=0)
    assert {s: alone.counts(s) for s in ("train", "val", "test")} == {
        "train": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    assert alone.validation_split == 0.34 and alone.test_split == 0.34
    data = load_image_folder(str(root), image_size=8, validation_split=0.34)
    assert data.val is not None and data.test is None
    write_image_folder(root, classes=("cat",), per_class=1)  # "train" beside a class: a plain class folder
    assert find_images(str(root)).class_names == ["cat", "train"]


def _manifest_folder(tmp_path):
    images = write_image_folder(tmp_path / "imgs", classes=("cat", "dog"), per_class=3)
    rows = [(os.path.join("imgs", c, f"img_{i}.png"), c) for c in ("cat", "dog") for i in range(3)]
    return images, rows


@pytest.mark.backend_free
@pytest.mark.parametrize("header", [True, False])
def test_csv_manifest(tmp_path, header):
    images, rows = _manifest_folder(tmp_path)
    rows[0] = (os.path.join(images, "cat", "img_0.png"), "cat")  # an absolute path
    lines = (["path,label"] if header else []) + [f"{path},{label}" for path, label in rows]
    manifest = tmp_path / "labels.csv"
    manifest.write_text("\n".join(lines) + "\n")
    found = find_images(str(manifest))
    assert found.kind == "manifest" and found.class_names == ["cat", "dog"]
    assert sorted(found.paths) == sorted(os.path.abspath(tmp_path / p) for p, _ in rows)
    assert sorted(found.labels) == [0, 0, 0, 1, 1, 1]
    data = load_image_folder(str(manifest), image_size=8, batch_size=8, validation_split=0)
    assert sum(int(np.asarray(y).shape[0]) for _, y in data.train) == 6


@pytest.mark.backend_free
def test_json_manifest_and_numeric_labels_sort_as_numbers(tmp_path):
    _, rows = _manifest_folder(tmp_path)
    labels = {"cat": "10", "dog": "2"}
    entries = [{"path": p, "label": labels[c]} for p, c in rows[:3]] + [[p, labels[c]] for p, c in rows[3:]]
    manifest = tmp_path / "labels.json"
    manifest.write_text(json.dumps(entries))
    found = find_images(str(manifest))
    assert found.class_names == ["2", "10"]
    assert [found.labels[found.paths.index(os.path.abspath(tmp_path / p))] for p, _ in rows] == [1, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("row, fragment", [
    ("imgs/cat/missing.png,cat", "line 3: file not found"), ("imgs/cat/img_1.png,", "line 3: empty label"),
    ("imgs/cat/img_1.png,cat,extra", "line 3: expected 2 columns"),
    ("imgs/dog/img_0.png,cat", "is listed again (first at line 2)")])
@pytest.mark.backend_free
def test_bad_csv_rows_are_named(tmp_path, row, fragment):
    _manifest_folder(tmp_path)
    manifest = tmp_path / "labels.csv"
    manifest.write_text(f"path,label\nimgs/dog/img_0.png,dog\n{row}\n")
    with pytest.raises(KerasTransferError) as info:
        find_images(str(manifest))
    assert fragment in str(info.value) and str(manifest) in str(info.value)


@pytest.mark.backend_free
def test_bad_json_entry_and_missing_source(tmp_path):
    manifest = tmp_path / "labels.json"
    manifest.write_text(json.dumps([{"path": "a.png"}]))
    with pytest.raises(KerasTransferError, match="entry 1"):
        find_images(str(manifest))
    with pytest.raises(KerasTransferError, match="not found"):
        find_images(str(tmp_path / "nowhere.csv"))
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(KerasTransferError, match="no rows"):
        find_images(str(tmp_path / "empty.csv"))
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(KerasTransferError, match="not a folder or a .csv/.json manifest"):
        find_images(str(tmp_path / "x.txt"))


# splits, summary, class weights ----------------------------------------------------------------------------


def _labelled(counts):
    labels = [label for label, n in enumerate(counts) for _ in range(n)]
    paths = [f"/data/{label}/{i:03d}.png" for i, label in enumerate(labels)]
    return LabelledImages(paths=paths, labels=labels, class_names=[f"c{k}" for k in range(len(counts))],
                          sizes=[(10 + i % 3, 20) for i in range(len(labels))])


@pytest.mark.backend_free
def test_split_is_stratified_reproducible_and_keeps_a_training_image():
    images = _labelled([20, 10, 3, 2, 1])
    first = split_images(images, validation_split=0.2, test_split=0.1, seed=3)
    assert first.as_dict() == split_images(images, validation_split=0.2, test_split=0.1, seed=3).as_dict()
    assert first.as_dict() != split_images(images, validation_split=0.2, test_split=0.1, seed=4).as_dict()
    assert first.counts("val") == {"c0": 4, "c1": 2, "c2": 1, "c3": 0, "c4": 0}
    assert first.counts("test") == {"c0": 2, "c1": 1, "c2": 0, "c3": 0, "c4": 0}
    assert all(count >= 1 for count in first.counts("train").values())
    together = sorted(first.paths("train") + first.paths("val") + first.paths("test"))
    assert together == sorted(images.paths)
    heavy = split_images(_labelled([2, 2]), validation_split=0.5, test_split=0.45, seed=0)
    assert heavy.counts("train") == {"c0": 1, "c1": 1}


@pytest.mark.parametrize("kwargs, received", [
    (dict(validation_split=1.0), "validation_split=1.0"), (dict(test_split=-0.1), "test_split=-0.1"),
    (dict(validation_split=0.5, test_split=0.5), "test_split=0.5")])
@pytest.mark.backend_free
def test_bad_split_fractions(kwargs, received):
    with pytest.raises(KerasTransferError, match=f"Received: .*{received}"):
        split_images(_labelled([4, 4]), **kwargs)


@pytest.mark.backend_free
def test_summary_counts_sizes_and_imbalance():
    images = _labelled([9, 3])
    images.skipped, images.ignored = [("/data/bad.jpg", "truncated")], 2
    summary = summarize(split_images(images, validation_split=0.0, seed=0))
    data = summary.as_dict()
    assert data["counts"]["train"] == {"c0": 9, "c1": 3} and data["imbalance_ratio"] == 3.0
    assert data["image_size"]["height"] == {"min": 10, "median": 11.0, "max": 12}
    assert data["skipped"] == [{"path": "/data/bad.jpg", "reason": "truncated"}] and data["ignored"] == 2
    text = str(summary)
    assert "/data/bad.jpg: truncated" in text and "3.00" in text and "c0" in text
    json.dumps(data)  # JSON-ready


@pytest.mark.backend_free
def test_class_weights_are_balanced():
    weights = class_weights([0, 0, 0, 1, 2, 2], 4)
    assert weights == {0: 6 / (4 * 3), 1: 6 / 4, 2: 6 / (4 * 2), 3: 1.0}
    for bad in ([0, 5], []):
        with pytest.raises(KerasTransferError, match="Received: labels="):
            class_weights(bad, 4)


# train_from_folder and the CLI on a folder of odd files ---------------------------------------------------

TINY = dict(recipe="two_phase", backbone="tinyvgg", weights=None, input_size=32, strategy="head_only", epochs=1, batch_size=4,
            verbose=0)
TINY_CLI = ["--recipe", "two_phase", "--backbone", "tinyvgg", "--weights", "none", "--input-size", "32", "--epochs", "1", "--strategy",
            "head_only", "--batch-size", "4"]


def test_training_on_a_messy_folder_reports_every_skipped_file(tmp_path, capsys):
    """Through `keras-transfer train` (which calls train_from_folder), with --test-split and --class-weight: the
    file that is no image is skipped by the scan; the two damaged ones are named and skipped when decoded."""
    root, bad = write_messy_folder(tmp_path / "messy")
    not_an_image = [path for path in bad if path.endswith("text.jpg")]
    damaged = sorted(set(bad) - set(not_an_image))
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.main(["train", root, *TINY_CLI, "--validation-split", "0.25", "--test-split", "0.2",
                         "--class-weight", "balanced", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and all(path in printed for path in bad) and "empty" in printed
    with open(out / "data_summary.json") as f:
        summary = json.load(f)
    assert [item["path"] for item in summary["skipped"]] == not_an_image
    assert [item["path"] for item in summary["skipped_while_training"]] == damaged
    assert all("damaged or truncated" in item["reason"] for item in summary["skipped_while_training"])
    assert summary["dropped_classes"] == [{"class": "empty", "reason": "empty folder"}]
    assert summary["counts"]["test"] == {"cat": 1, "dog": 1}  # round(5 * 0.2), round(6 * 0.2)
    with open(out / "splits.json") as f:
        splits = json.load(f)
    assert splits["class_names"] == ["cat", "dog"] and len(splits["test"]) == 2
    listed = [path for part in ("train", "val", "test") for path, _ in splits[part]]
    assert len(listed) == 11 and not set(listed) & set(not_an_image)
    with open(out / "config.json") as f:
        config = json.load(f)
    assert config["settings"]["class_weight"] == "balanced" and config["settings"]["test_split"] == 0.2
    assert config["class_weights"] == {"0": 1.0, "1": 1.0}  # train: 3 cats, 3 dogs
    assert (out / "best.keras").exists()


@pytest.mark.backend_free
def test_strict_stops_before_training_and_writes_nothing(tmp_path, capsys):
    root, bad = write_messy_folder(tmp_path / "messy")
    out = tmp_path / "run"
    with pytest.raises(KerasTransferError) as info:
        train_from_folder(root, str(out), strict=True, **TINY)
    assert all(path in str(info.value) for path in bad) and not out.exists()
    code = cli.main(["train", root, *TINY_CLI, "--strict", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and all(path in err for path in bad) and not out.exists()


@pytest.mark.backend_free
def test_unknown_class_weight_is_refused(tmp_path, image_folder):
    with pytest.raises(KerasTransferError, match="Received: class_weight='even'"):
        train_from_folder(image_folder, str(tmp_path / "run"), class_weight="even", **TINY)
    assert not (tmp_path / "run").exists()
