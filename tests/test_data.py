"""Loading a folder of class subfolders: names, counts, the split, pixel range and size, and the errors."""

import os
import shutil

import numpy as np
import pytest
from conftest import FOLDER_CLASSES, IMAGES_PER_CLASS

from keras_transfer.data import load_image_folder, scan_image_folder
from keras_transfer.errors import KerasTransferError

TOTAL = len(FOLDER_CLASSES) * IMAGES_PER_CLASS


def _examples(dataset):
    """[(label, image)] in iteration order."""
    out = []
    for images, labels in dataset:
        out.extend(zip(np.asarray(labels).tolist(), np.asarray(images)))
    return out


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


def test_images_are_raw_floats_at_the_requested_size(image_folder):
    data = load_image_folder(image_folder, image_size=16, batch_size=4, validation_split=0.2)
    images, labels = next(iter(data.train))
    images = np.asarray(images)
    assert images.shape[1:] == (16, 16, 3) and 1 <= images.shape[0] <= 4
    assert images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    assert images.max() > 1.5  # not rescaled to [0, 1]
    assert np.asarray(labels).dtype.kind == "i"


def test_the_same_seed_gives_the_same_split(image_folder):
    first = load_image_folder(image_folder, image_size=16, batch_size=4, seed=11)
    second = load_image_folder(image_folder, image_size=16, batch_size=4, seed=11)
    for a, b in [(first.val, second.val), (first.train, second.train)]:
        a, b = _examples(a), _examples(b)
        assert [label for label, _ in a] == [label for label, _ in b]
        for (_, image_a), (_, image_b) in zip(a, b):
            np.testing.assert_array_equal(image_a, image_b)


def test_train_and_val_do_not_overlap(image_folder):
    data = load_image_folder(image_folder, image_size=20, batch_size=4, seed=3)  # native size: no resampling
    train = {image.tobytes() for _, image in _examples(data.train)}
    val = {image.tobytes() for _, image in _examples(data.val)}
    assert len(train) + len(val) == TOTAL and not train & val


def test_no_validation_split(image_folder):
    data = load_image_folder(image_folder, image_size=16, batch_size=32, validation_split=0)
    assert data.val is None
    assert len(_examples(data.train)) == TOTAL


def test_non_images_and_hidden_folders_are_ignored(image_folder):
    with open(os.path.join(image_folder, "cat", "notes.txt"), "w") as f:
        f.write("not an image")
    os.makedirs(os.path.join(image_folder, ".cache"))
    assert scan_image_folder(image_folder) == {name: IMAGES_PER_CLASS for name in FOLDER_CLASSES}


def test_a_missing_folder(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(KerasTransferError) as info:
        load_image_folder(missing, image_size=16)
    assert missing in str(info.value)


def test_one_class_only(image_folder):
    for name in FOLDER_CLASSES[1:]:
        shutil.rmtree(os.path.join(image_folder, name))
    with pytest.raises(KerasTransferError) as info:
        load_image_folder(image_folder, image_size=16)
    message = str(info.value)
    assert "at least two" in message and "found 1 (cat)" in message


def test_an_empty_class_folder_is_named(image_folder):
    os.makedirs(os.path.join(image_folder, "fox"))
    with pytest.raises(KerasTransferError) as info:
        load_image_folder(image_folder, image_size=16)
    message = str(info.value)
    assert "fox" in message and image_folder in message
    named = message.split(image_folder)[0]  # the part before the folder path lists the empty class folders
    assert "fox" in named and not any(name in named for name in FOLDER_CLASSES)


@pytest.mark.parametrize("split", [1.0, -0.1])
def test_a_bad_validation_split(image_folder, split):
    with pytest.raises(KerasTransferError, match=f"Received: validation_split={split}"):
        load_image_folder(image_folder, image_size=16, validation_split=split)
