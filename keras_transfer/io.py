"""Files that survive a kill: every file keras_transfer writes goes through here.

Each file (or folder, for a SavedModel) is written under a temporary name in its own folder, flushed to disk
(`fsync`) and renamed into place (`os.replace`), so a crash or `kill -9` at any moment leaves the old file or the
new one, never half of one. The final file gets the mode an ordinary new file gets under the user's umask (a
temporary file starts private, 0600). Temporary names carry the writing process's id (`.tmp-<pid>-...`), so the
next start can remove what a killed process left behind without touching a live writer's files. Paths are never
globbed unescaped: a folder named `runs/[a]` touches nothing of `runs/a`.
"""

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import zipfile

from keras_transfer.errors import DamagedFileError, KerasTransferError, WorkFailedError

TEMP_PREFIX = ".tmp-"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix():
    return f"{TEMP_PREFIX}{os.getpid()}-"


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _disk_full(error, path):
    return WorkFailedError(
        f"No space left on the device while writing {path}; the previous version of that file, if any, is intact. "
        f"Free some space, then run the same command with --resume to continue a training run. "
        f"Received: [Errno {error.errno}] {error.strerror}")


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yields a temporary file name beside `path`; when the block ends, syncs it, gives it the umask's mode and
    renames it to `path`; on an error removes it. A full disk raises a `WorkFailedError` naming `path`.

    Example:
    >>> with atomic_path("/tmp/plot.png", ".png") as tmp:
    ...     open(tmp, "wb").write(b"...")
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(), suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise _disk_full(error, path) from None
        raise


@contextlib.contextmanager
def atomic_folder(path):
    """Yields a temporary folder beside `path`; when the block ends, gives it the umask's mode and renames it to
    `path` (which must not exist); on an error removes it.

    Example:
    >>> with atomic_folder("/tmp/kt_exported") as tmp:
    ...     open(os.path.join(tmp, "a.txt"), "w").write("a")
    """
    tmp = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(path)), prefix=_temp_prefix())
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, path)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise _disk_full(error, path) from None
        raise


def check_writable(folder, what="files", received=None):
    """Creates `folder` if needed and checks that a file can be made there, before any work; raises a
    `KerasTransferError` naming it otherwise."""
    try:
        os.makedirs(folder, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=_temp_prefix()))
    except OSError as error:
        raise KerasTransferError(f"Cannot write {what} into {folder}: {error.strerror or error}. Choose a writable "
                                 f"folder. Received: {received or f'folder={os.fspath(folder)!r}'}") from None


def write_bytes(path, data):
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text):
    """Writes `text` to `path` atomically (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    """Writes `data` as indented JSON to `path` atomically.

    Example:
    >>> write_json("/tmp/kt_io.json", {"a": 1}); read_json("/tmp/kt_io.json")
    {'a': 1}
    """
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path):
    """The JSON in `path`; a file that is not valid UTF-8 JSON raises a `DamagedFileError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFileError(f"{path} is damaged (not valid JSON: {error}); it was changed or cut short after "
                               f"keras_transfer wrote it. Received: path={os.fspath(path)!r}") from None


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


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


# What tempfile makes from `_temp_prefix()`: ".tmp-<pid>-" + 8 random characters + a suffix; 0.1.0 wrote
# ".tmp-" and ".export-" + 8 characters. Nothing else in a folder is ever removed.
_TEMP_NAME = re.compile(r"^(?:\.tmp-(?P<pid>\d+)-|\.tmp-|\.export-)[a-z0-9_]{8}(?:\.[a-z0-9]{1,8})?$")


def remove_temp_files(folder):
    """Removes the temporary files and folders that killed writes left in `folder`: names made by `atomic_path` /
    `atomic_folder` of processes that no longer run (or by keras_transfer 0.1.0); returns their names."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    stale = []
    for name in names:
        match = _TEMP_NAME.match(name)
        if not match or (match["pid"] and _pid_alive(int(match["pid"]))):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
        stale.append(name)
    return sorted(stale)
