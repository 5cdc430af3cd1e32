"""`images.read_image`: every format and mode becomes RGB uint8, EXIF orientation is applied, a bad file is named."""

import os

import numpy as np
import pytest
from image_files import (pixels, write_16bit_png, write_corrupt_jpeg, write_gray_jpeg, write_png, write_rgba_png,
                         write_text_as_jpeg, write_truncated_png)
from PIL import Image

from keras_transfer.errors import KerasTransferError
from keras_transfer.data.images import ImageDecodeError, is_image_name, load_images, read_image, resize_image

pytestmark = pytest.mark.backend_free  # runs on the first backend only (tests/run.sh)


def test_png_round_trip(tmp_path):
    path = write_png(tmp_path / "a.png", seed=3)
    image = read_image(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, pixels(seed=3))


def test_rgba_drops_alpha(tmp_path):
    image = read_image(write_rgba_png(tmp_path / "a.png", seed=4))
    assert image.shape == (20, 24, 3)
    np.testing.assert_array_equal(image, pixels(seed=4))


def test_grayscale_becomes_three_equal_channels(tmp_path):
    image = read_image(write_gray_jpeg(tmp_path / "g.jpg"))
    assert image.shape == (20, 24, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    assert np.abs(image[..., 0].astype(int) - pixels()[..., 0]).mean() < 20  # JPEG, but the same picture


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    path, values = write_16bit_png(tmp_path / "d.png")
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (20, 24, 3)
    expected = np.round(values / 65535.0 * 255.0)
    assert np.abs(image[..., 0].astype(float) - expected).max() <= 1
    assert image.max() > 200  # clipping at 255 of 16-bit values would make almost everything white


def test_exif_orientation_is_applied(tmp_path):
    original = np.zeros((8, 16, 3), np.uint8)
    original[:, :8] = (255, 0, 0)
    original[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = str(tmp_path / "rotated.jpg")
    Image.fromarray(original).save(path, quality=95, exif=exif.tobytes())
    image = read_image(path)
    assert image.shape == (16, 8, 3)
    expected = np.rot90(original, k=-1)  # clockwise: the left (red) half comes on top
    assert np.abs(image.astype(int) - expected).mean() < 10
    assert image[2, 4, 0] > 200 and image[13, 4, 2] > 200


def test_palette_gif_and_transparent_palette(tmp_path):
    original = pixels(seed=5)
    palette = Image.fromarray(original).quantize(colors=16)
    palette.save(tmp_path / "p.gif")
    expected = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(read_image(str(tmp_path / "p.gif")), expected)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "t.png", transparency=0)
    assert read_image(str(tmp_path / "t.png")).shape == (20, 24, 3)


def test_webp(tmp_path):
    path = str(tmp_path / "a.webp")
    Image.fromarray(pixels(seed=6)).save(path, lossless=True)
    np.testing.assert_array_equal(read_image(path), pixels(seed=6))


@pytest.mark.parametrize("writer, reason", [
    (write_corrupt_jpeg, "damaged"), (write_truncated_png, "truncated"), (write_text_as_jpeg, "not an image")])
def test_bad_files_are_named_with_a_reason(tmp_path, writer, reason):
    name = "bad.png" if writer is write_truncated_png else "bad.jpg"
    path = writer(str(tmp_path / name))
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    assert info.value.path == path and reason in info.value.reason
    assert path in str(info.value) and isinstance(info.value, KerasTransferError)


def test_a_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="no such file"):
        read_image(str(tmp_path / "nowhere.png"))


def test_an_image_too_large_to_decode_safely_is_named(tmp_path, monkeypatch):
    path = write_png(tmp_path / "big.png")  # 20 x 24 = 480 pixels, over twice the limit below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageDecodeError, match="too large"):
        read_image(path)


def test_is_image_name():
    assert is_image_name("a/b/C.JPG") and is_image_name("x.webp")
    assert not is_image_name("a/.hidden.png") and not is_image_name("notes.txt")


def test_resize_and_load_images(tmp_path):
    paths = [write_png(tmp_path / f"{i}.png", seed=i) for i in range(2)]
    batch = load_images(paths, 8)
    assert batch.shape == (2, 8, 8, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], resize_image(read_image(paths[1]), 8))
    assert resize_image(pixels(8, 8), 8).dtype == np.float32
    assert load_images([], 8).shape == (0, 8, 8, 3)
    assert os.path.exists(paths[0])
