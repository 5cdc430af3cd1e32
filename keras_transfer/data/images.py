"""Reads one image file into an RGB uint8 array, whatever its format, mode or orientation.

Used by the folder loader, `predict` and `evaluate`, so every path reads images the same way:
JPEG, PNG, BMP, GIF (first frame) and WebP; grayscale, palette, RGBA, CMYK and 16-bit images
become 8-bit RGB; EXIF orientation is applied. A file that cannot be decoded raises
`ImageDecodeError` naming it.
"""

import os
import struct

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_transfer.errors import KerasTransferError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class ImageDecodeError(KerasTransferError):
    """A file that is not a readable image. `path` names it, `reason` says why."""

    def __init__(self, path, reason):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"Cannot read image {self.path}: {reason}. Allowed formats: "
                         f"{', '.join(IMAGE_EXTENSIONS)}.")


def is_image_name(name):
    """True for a visible file whose extension is one the loader reads."""
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _to_rgb(image):
    """Converts any PIL mode to 8-bit RGB; 16-bit and float images are scaled, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F" and array.max() <= 1.0:
            top = 1.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(array, mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def read_image(path):
    """Reads `path` as an RGB uint8 array of shape `(height, width, 3)`.

    Args:
        path: an image file (JPEG, PNG, BMP, GIF or WebP).

    Returns:
        A `numpy.ndarray` of dtype uint8.

    Raises:
        ImageDecodeError: the file is missing, empty, truncated or not an image.

    Example:
    >>> from PIL import Image
    >>> Image.new("L", (5, 4)).save("/tmp/gray.png")
    >>> read_image("/tmp/gray.png").shape
    (4, 5, 3)
    """
    if not os.path.isfile(path):
        raise ImageDecodeError(path, "no such file")
    try:
        with Image.open(path) as image:
            image.load()  # decodes every byte: a truncated file fails here, not mid-epoch
            image = ImageOps.exif_transpose(image)
            return np.asarray(_to_rgb(image), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image file (its content matches no known format)") from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(path, f"too large to decode safely ({error})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as error:
        # PIL's plugins raise any of these on damaged data (EOFError: GIF frames, struct.error: short headers)
        raise ImageDecodeError(path, f"damaged or truncated ({error})") from None


def image_shape(size):
    """`(height, width)` from a square side or a `(height, width)` pair."""
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def resize_image(array, size):
    """Resizes an RGB uint8 array to `size` (a square side or `(height, width)`; bilinear), returning float32
    values in [0, 255]."""
    height, width = image_shape(size)
    if array.shape[:2] == (height, width):
        return array.astype(np.float32)
    resized = Image.fromarray(array).resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def load_images(paths, size):
    """Reads and resizes many files into one float32 batch `(len(paths), height, width, 3)`; `size` is a square
    side or `(height, width)`."""
    return np.stack([resize_image(read_image(p), size) for p in paths]) if len(paths) else \
        np.zeros((0, *image_shape(size), 3), np.float32)
