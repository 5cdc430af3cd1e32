"""Files that survive a kill: every file keras_transfer writes goes through here.

Each file is written under a temporary name in its own folder, flushed to disk (`fsync`) and renamed into
place (`os.replace`), so a crash or `kill -9` at any moment leaves the old file or the new one, never half
of one.
"""

import contextlib
import glob
import json
import os
import tempfile
import zipfile

TEMP_PREFIX = ".tmp-"


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yields a temporary file name beside `path`; when the block ends, syncs it and renames it to `path`;
    on an error removes it.

    Example:
    >>> with atomic_path("/tmp/plot.png", ".png") as tmp:
    ...     open(tmp, "wb").write(b"...")
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path, data):
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    """Writes `data` as indented JSON to `path` atomically.

    Example:
    >>> write_json("/tmp/kt_io.json", {"a": 1}); read_json("/tmp/kt_io.json")
    {'a': 1}
    """
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_model(model, tmp, extra):
    """Writes `model` (and `extra` files into its zip) to `tmp`; tests replace this to die mid-write."""
    model.save(tmp, overwrite=True)
    if extra:
        with zipfile.ZipFile(tmp, "a") as z:
            for name, text in extra.items():
                z.writestr(name, text)


def save_model(model, path, *, extra=None):
    """Saves `model` to the `.keras` file `path` atomically.

    Args:
        model: a Keras model.
        path: the `.keras` file to (over)write.
        extra: optional `{name: text}` files added to the zip (Keras ignores them on load).

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> save_model(model, "/tmp/m.keras")
    """
    with atomic_path(path, ".keras") as tmp:
        _write_model(model, tmp, extra)


def remove_temp_files(folder):
    """Removes the temporary files a killed write left behind in `folder`; returns their names."""
    stale = glob.glob(os.path.join(glob.escape(os.fspath(folder)), TEMP_PREFIX + "*"))
    for path in stale:
        os.unlink(path)
    return [os.path.basename(p) for p in stale]
