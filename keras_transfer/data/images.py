"""Reads one image file into an RGB uint8 array, whatever its format, mode or orientation.

Used by the folder loader, `predict` and `evaluate`, so every path reads images the same way:
JPEG, PNG, BMP, GIF (first frame) and WebP; grayscale, palette, RGBA, CMYK and 16-bit images
become 8-bit RGB; EXIF orientation is applied. A file that cannot be decoded raises
`ImageDecodeError` naming it.
"""

import collections
import contextlib
import os
import struct
import warnings

import keras
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_transfer.data.scan import file_problem
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
    problem = file_problem(path)  # a FIFO or device is never opened: `open` could wait forever
    if problem:
        raise ImageDecodeError(path, problem)
    with _pil_errors(path), Image.open(path) as image:
        image.load()  # decodes every byte: a truncated file fails here, not mid-epoch
        image = ImageOps.exif_transpose(image)
        return np.asarray(_to_rgb(image), dtype=np.uint8)


@contextlib.contextmanager
def _pil_errors(path):
    """Turns what PIL raises on a file into an `ImageDecodeError` naming `path` and why."""
    try:
        yield
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image file (its content matches no known format)") from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(path, f"too large to decode safely ({error})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as error:
        # PIL's plugins raise any of these on damaged data (EOFError: GIF frames, struct.error: short headers)
        raise ImageDecodeError(path, f"damaged or truncated ({error})") from None


# -- headers: what the scan reads instead of decoding ---------------------------------------------------------------

ImageHeader = collections.namedtuple("ImageHeader", "format mode height width orientation reader")
ImageHeader.__doc__ = """What a file's header says: format, PIL-style mode, size, EXIF orientation, and the reader
that decodes it exactly like `read_image` (`"jpeg"` or `"png"`: TensorFlow's decoders; `"pil"`: `read_image`)."""

READERS = ("jpeg", "png", "pil")  # the pipeline's decoder per file, in this order (its index is the branch)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)
_CHUNK = 4096


class _Bytes:
    """The start of a file (`data`), read further only where a parser asks for more (`get`)."""

    def __init__(self, fd):
        self.fd, self.data = fd, os.read(fd, _CHUNK)

    def get(self, start, length):
        while len(self.data) < start + length:
            more = os.read(self.fd, max(_CHUNK, start + length - len(self.data)))
            if not more:
                raise EOFError
            self.data += more
        return self.data[start:start + length]


def _exif_orientation(tiff):
    """The orientation tag (0x0112) of an EXIF TIFF block; 1 where absent or unreadable."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (offset,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[offset:offset + 2])
        for i in range(count):
            entry = tiff[offset + 2 + 12 * i:offset + 14 + 12 * i]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag == 0x0112 and kind == 3:
                return struct.unpack(order + "H", entry[8:10])[0]
    except (KeyError, struct.error):
        pass
    return 1


def _jpeg_header(data):
    position, orientation, buffer = 2, 1, data.data
    while True:
        if position + 10 > len(buffer):
            data.get(position, 10)  # may stop short of 10 at the end of the file: the slices below check
            buffer = data.data
        if buffer[position] != 0xFF:
            return None
        marker = buffer[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
            continue
        length = buffer[position + 2] << 8 | buffer[position + 3]
        if marker == 0xE1 and data.get(position + 4, 6) == b"Exif\x00\x00":
            orientation = _exif_orientation(data.get(position + 10, length - 8))
            buffer = data.data
        elif marker in _JPEG_SOF:
            bits, height, width, components = struct.unpack_from(">BHHB", buffer, position + 4)
            mode = {1: "L", 3: "RGB", 4: "CMYK"}.get(components, f"{components} channels")
            tf_reads = bits == 8 and components in (1, 3) and orientation == 1
            return ImageHeader("JPEG", mode, height, width, orientation, "jpeg" if tf_reads else "pil")
        elif marker == 0xDA:  # start of scan before any frame header
            return None
        position += 2 + length


def _png_header(data):
    length, kind = struct.unpack(">I4s", data.get(8, 8))
    if kind != b"IHDR" or length != 13:
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data.get(16, 10))
    position, transparent, orientation = 8 + 12 + length, False, 1
    while True:  # the chunks before the image data: tRNS, eXIf
        length, kind = struct.unpack(">I4s", data.get(position, 8))
        if kind in (b"IDAT", b"IEND"):
            break
        transparent |= kind == b"tRNS"
        if kind == b"eXIf":
            orientation = _exif_orientation(data.get(position + 8, length))
        position += 12 + length
    mode = "I;16" if depth == 16 and colour == 0 else _PNG_MODES.get(colour, f"colour type {colour}")
    tf_reads = depth == 8 and orientation == 1 and (colour in (0, 2, 6) or (colour == 3 and not transparent))
    return ImageHeader("PNG", mode, height, width, orientation, "png" if tf_reads else "pil")


def _pil_header(path):
    with Image.open(path) as image:  # reads the header only; decoding waits for load()
        exif = image.info.get("exif")
        orientation = _exif_orientation(exif[6:] if exif[:6] == b"Exif\x00\x00" else exif) \
            if isinstance(exif, bytes) else 1
        return ImageHeader(image.format, image.mode, image.height, image.width, orientation, "pil")


def read_header(path):
    """Reads `path`'s header (not its pixels): an `ImageHeader`, about 15x cheaper than `read_image`.

    JPEG and PNG headers are parsed here; other formats through PIL's lazy `Image.open`. Files TensorFlow
    decodes exactly like `read_image` (8-bit JPEG in RGB or grayscale, 8-bit PNG without a transparent palette,
    no EXIF rotation) get the reader `"jpeg"`/`"png"`; CMYK, 16-bit, transparent palettes, rotated images and
    every other format get `"pil"`. A damaged body is not seen here: it fails when decoded.

    Raises:
        ImageDecodeError: the file is missing, unreadable or not an image at all.

    Example:
    >>> Image.new("RGB", (5, 4)).save("/tmp/header.png")
    >>> read_header("/tmp/header.png")
    ImageHeader(format='PNG', mode='RGB', height=4, width=5, orientation=1, reader='png')
    """
    problem = file_problem(path)  # a FIFO or device is never opened: `open` could wait forever
    if problem:
        raise ImageDecodeError(path, problem)
    try:
        fd = os.open(path, os.O_RDONLY)  # no buffered file object: the header read is two system calls
        try:
            data = _Bytes(fd)
            if data.data[:3] == b"\xff\xd8\xff":
                header = _jpeg_header(data)
            elif data.data[:8] == _PNG_SIGNATURE:
                header = _png_header(data)
            else:
                header = None
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise ImageDecodeError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(path, "a folder, not a file") from None
    except (EOFError, struct.error, IndexError):
        header = None  # cut short: PIL names what is wrong
    except OSError as error:
        raise ImageDecodeError(path, f"cannot open it ({error.strerror or error})") from None
    if header is not None:
        return header
    with _pil_errors(path):
        return _pil_header(path)


def image_shape(size):
    """`(height, width)` from a square side or a `(height, width)` pair."""
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def tensorflow():
    """TensorFlow, imported on first use; on another Keras backend its GPU is hidden first, so that feeding
    batches or resizing does not claim the memory that backend needs (later than TF's first op: a warning)."""
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline, a resize or an export

    if keras.backend.backend() != "tensorflow":
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as error:
            if tf.config.get_visible_devices("GPU"):
                warnings.warn(f"TensorFlow already uses the GPU, so it may take GPU memory that the "
                              f"{keras.backend.backend()} backend needs ({error}).", stacklevel=3)
    return tf


def resize_image(array, size, antialias=False):
    """Resizes an RGB uint8 array to `size` (a square side or `(height, width)`; bilinear, antialiased or not)
    with the training pipeline's own TensorFlow resize, returning float32 values in [0, 255]; an image
    already at `size` is returned as it is."""
    height, width = image_shape(size)
    if array.shape[:2] == (height, width):
        return array.astype(np.float32)
    return tensorflow().image.resize(array, (height, width), method="bilinear", antialias=antialias).numpy()


def load_images(paths, size, antialias=False):
    """Reads and resizes many files into one float32 batch `(len(paths), height, width, 3)`; `size` is a square
    side or `(height, width)`."""
    return np.stack([resize_image(read_image(p), size, antialias) for p in paths]) if len(paths) else \
        np.zeros((0, *image_shape(size), 3), np.float32)
