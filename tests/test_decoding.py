"""Decoding in TensorFlow ops agrees with `images.read_image` (PIL) on every kind of file the data tests make,
the scan's header read agrees with PIL's, and a file that fails to decode mid-epoch is named and skipped.

Stated tolerances (pixel levels, 0-255): at the file's own size, 0 for every kind (TensorFlow decodes 8-bit JPEG
with `INTEGER_ACCURATE`, the IDCT PIL uses; the kinds TensorFlow would read differently go through PIL);
resized with `antialias=True`, within 1 level of PIL's antialiased bilinear resize (the reader before 0.2);
resized with the default `antialias=False`, equal (1e-3) to `resize_image`, which `predict` uses.
"""

import logging
import os

import numpy as np
import pytest
from image_files import (pixels, write_16bit_png, write_corrupt_jpeg, write_gray_jpeg, write_jpeg, write_png,
                         write_rgba_png, write_truncated_png)
from PIL import Image

from keras_transfer.data.images import read_header, read_image, resize_image
from keras_transfer.data.pipeline import SkippedFiles, make_dataset
from keras_transfer.errors import KerasTransferError


def _photo(height, width, seed=0):
    """A crop of a real photo (scikit-learn ships two), so that JPEG and resizing see natural content."""
    from sklearn.datasets import load_sample_images

    photo = load_sample_images().images[seed % 2]
    top, left = 17 * seed % (photo.shape[0] - height), 31 * seed % (photo.shape[1] - width)
    return np.ascontiguousarray(photo[top:top + height, left:left + width])


def _every_kind(folder):
    """`{kind: (path, reader the header should choose)}`: one file of each kind the data tests use, and more."""
    folder = str(folder)
    files = {"png": (write_png(f"{folder}/a.png"), "png"), "jpeg": (write_jpeg(f"{folder}/a.jpg"), "jpeg"),
             "rgba png": (write_rgba_png(f"{folder}/rgba.png"), "png"),
             "gray jpeg": (write_gray_jpeg(f"{folder}/gray.jpg"), "jpeg"),
             "16-bit png": (write_16bit_png(f"{folder}/deep.png")[0], "pil")}
    photo = Image.fromarray(_photo(150, 200))
    photo.save(f"{folder}/photo.jpg", quality=90)
    files["photo jpeg"] = (f"{folder}/photo.jpg", "jpeg")
    photo.save(f"{folder}/photo.png")
    files["photo png"] = (f"{folder}/photo.png", "png")
    photo.save(f"{folder}/progressive.jpg", quality=85, progressive=True)
    files["progressive jpeg"] = (f"{folder}/progressive.jpg", "jpeg")
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(f"{folder}/rotated.jpg", quality=90, exif=exif.tobytes())
    files["exif-rotated jpeg"] = (f"{folder}/rotated.jpg", "pil")
    photo.convert("CMYK").save(f"{folder}/cmyk.jpg", quality=90)
    files["cmyk jpeg"] = (f"{folder}/cmyk.jpg", "pil")
    Image.fromarray(pixels(seed=5)).quantize(colors=256).save(f"{folder}/palette.png")
    files["palette png"] = (f"{folder}/palette.png", "png")
    palette = Image.fromarray(pixels(seed=5)).quantize(colors=16)
    palette.save(f"{folder}/palette4.png")  # 4 bits per pixel
    files["4-bit palette png"] = (f"{folder}/palette4.png", "pil")
    palette.save(f"{folder}/transparent.png", transparency=0)
    files["transparent palette png"] = (f"{folder}/transparent.png", "pil")
    palette.save(f"{folder}/palette.gif")
    files["gif"] = (f"{folder}/palette.gif", "pil")
    Image.fromarray(pixels(seed=6)).save(f"{folder}/a.webp", lossless=True)
    files["webp"] = (f"{folder}/a.webp", "pil")
    Image.fromarray(pixels(seed=7)).save(f"{folder}/a.bmp")
    files["bmp"] = (f"{folder}/a.bmp", "pil")
    Image.fromarray(pixels(seed=8)[..., 0]).save(f"{folder}/gray.png")
    files["gray png"] = (f"{folder}/gray.png", "png")
    return files


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    return _every_kind(tmp_path_factory.mktemp("kinds"))


def _decoded(paths, size, **kwargs):
    """`{path: image}` through one pipeline at `size`."""
    dataset = make_dataset(paths, [0] * len(paths), image_size=size, batch_size=len(paths), include_paths=True,
                           **kwargs)
    images, _, names = next(iter(dataset))
    return {os.fsdecode(name): image for name, image in zip(np.asarray(names).tolist(), np.asarray(images))}


@pytest.mark.backend_free
def test_the_header_says_what_pil_says(every_kind):
    for kind, (path, reader) in every_kind.items():
        header = read_header(path)
        with Image.open(path) as image:
            expected = (image.format, image.mode, image.height, image.width, image.getexif().get(0x0112, 1))
        assert tuple(header)[:5] == expected, kind
        assert header.reader == reader, kind


def test_every_kind_decodes_to_the_same_pixels_at_its_own_size(every_kind):
    expected = {path: read_image(path) for path, _ in every_kind.values()}
    for shape in {image.shape[:2] for image in expected.values()}:
        paths = [path for path, image in expected.items() if image.shape[:2] == shape]
        for path, image in _decoded(paths, shape).items():
            np.testing.assert_array_equal(image, expected[path].astype(np.float32), err_msg=path)
    rotated, _ = every_kind["exif-rotated jpeg"]
    assert expected[rotated].shape == (200, 150, 3)  # EXIF rotation applied, in the pipeline too


def test_resizing_matches_pil_with_antialias_and_predict_without(every_kind):
    paths = [path for path, _ in every_kind.values()]
    originals = {path: read_image(path) for path in paths}
    for size in [(12, 16), (64, 64)]:  # down and up
        with_antialias, without = _decoded(paths, size, antialias=True), _decoded(paths, size)
        for path, original in originals.items():
            old = np.asarray(Image.fromarray(original).resize(size[::-1], Image.BILINEAR), np.float32)
            assert np.abs(with_antialias[path] - old).max() <= 1.0, (path, size)
            np.testing.assert_allclose(without[path], resize_image(original, size), atol=1e-3, err_msg=path)


# damaged files found mid-epoch --------------------------------------------------------------------------------

@pytest.fixture
def with_damaged(tmp_path):
    good = [write_png(tmp_path / f"{i}.png", seed=i) for i in range(6)]
    damaged = sorted([write_corrupt_jpeg(tmp_path / "corrupt.jpg"), write_truncated_png(tmp_path / "cut.png")])
    return good, damaged


def test_a_damaged_file_is_named_and_skipped_without_stopping_the_epoch(with_damaged, caplog):
    good, damaged = with_damaged
    paths = sorted(good + damaged)
    skipped = SkippedFiles(paths, "train")
    dataset = make_dataset(paths, list(range(len(paths))), image_size=8, batch_size=3, shuffle=True,
                           skipped=skipped, include_paths=True)
    assert int(dataset.cardinality()) == 3  # Keras knows the steps of each epoch
    with caplog.at_level(logging.WARNING, logger="keras_transfer"):
        for epoch in range(2):
            seen = [os.fsdecode(p) for _, _, batch in dataset for p in np.asarray(batch).tolist()]
            assert len(seen) == len(paths)  # every step is there: two images of a second pass took their places
            assert set(seen) == set(good) and not set(seen) & set(damaged)
    assert sorted(skipped.skipped) == damaged
    assert all("damaged or truncated" in reason for reason in skipped.skipped.values())
    named = [r.getMessage() for r in caplog.records if "failed to decode" in r.getMessage()]
    assert len(named) == 1 and all(path in named[0] for path in damaged)  # named once, not every epoch


def test_a_pass_stopped_at_its_known_steps_names_its_damaged_files_once_finished(with_damaged):
    """Keras takes exactly `cardinality` batches, so the end marker after them runs only if `prefetch` got there in
    the background (a race: a validation file went unnamed in a CI run); `finish` ends the pass the same way."""
    good, damaged = with_damaged
    paths = sorted(good + damaged)
    skipped = SkippedFiles(paths, "val")
    dataset = make_dataset(paths, list(range(len(paths))), image_size=8, batch_size=3, skipped=skipped,
                           include_paths=True)
    iterator = iter(dataset.take(int(dataset.cardinality())))  # a Keras epoch: the known steps, no more
    seen = [os.fsdecode(p) for _, _, batch in iterator for p in np.asarray(batch).tolist()]
    assert set(seen) == set(good)
    skipped.finish()
    assert sorted(skipped.skipped) == damaged
    skipped.finish()  # no pass open: nothing read again, nothing named twice
    assert sorted(skipped.skipped) == damaged
    unused = SkippedFiles(paths, "test")
    unused.finish()  # never iterated: no pass to end, so no file is called damaged
    assert unused.skipped == {}


def test_an_evaluation_counts_no_image_twice(with_damaged):
    good, damaged = with_damaged
    paths = sorted(good + damaged)
    dataset = make_dataset(paths, list(range(len(paths))), image_size=8, batch_size=3, include_paths=True,
                           fill_skipped=False)
    seen = [os.fsdecode(p) for _, _, batch in dataset for p in np.asarray(batch).tolist()]
    assert sorted(seen) == sorted(good)


def test_a_vanished_file_stops_the_pass_naming_it(with_damaged):
    good, _ = with_damaged
    dataset = make_dataset(good, [0] * len(good), image_size=8, batch_size=2)
    os.remove(good[2])
    with pytest.raises(Exception, match="is gone"):
        for _ in dataset:
            pass


def test_mostly_damaged_data_stops_the_pass(tmp_path):
    paths = [write_corrupt_jpeg(tmp_path / f"{i}.jpg", seed=i) for i in range(3)] + [write_png(tmp_path / "ok.png")]
    with pytest.raises(Exception, match="3 of the 4 images"):
        for _ in make_dataset(paths, [0] * 4, image_size=8, batch_size=2):
            pass


@pytest.mark.backend_free
def test_strict_decodes_every_file_the_header_scan_lets_through(with_damaged):
    from keras_transfer.data.sources import find_images

    good, damaged = with_damaged
    folder = os.path.dirname(good[0])
    os.makedirs(os.path.join(folder, "a"))
    os.makedirs(os.path.join(folder, "b"))
    for i, path in enumerate(good + damaged):
        os.rename(path, os.path.join(folder, "ab"[i % 2], os.path.basename(path)))
    assert len(find_images(folder).paths) == 8  # headers are intact
    with pytest.raises(KerasTransferError, match="2 file"):
        find_images(folder, strict=True)
