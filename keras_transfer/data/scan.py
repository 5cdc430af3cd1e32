"""Which entries of a data folder are read: one rule for image folders, text folders and `predict`'s folders.

A scan never opens what it should not:
- only a regular file is opened. A named pipe (FIFO), a socket or a device named `x.png` or `x.txt` would make
  `open` wait forever (a FIFO blocks until a writer comes) or read without end (`/dev/zero`); the file type is
  read with `os.stat` (no open) and such an entry is skipped and named, like a damaged file;
- a symlink is followed only when its target lies inside the folder the user named (the data folder, or a folder
  given to `predict`); one pointing outside it, a broken one and a symlink loop are skipped and named, and never
  abort the run. A symlinked subfolder is not entered (its files would be read twice, or come from elsewhere);
  one that points outside or loops is named too.

`scan_files` walks a folder under this rule; `entry_problem` is the rule for one entry, `file_problem` the
regular-file part alone (for a path the user named directly: a manifest row, a file given to `predict`).
"""

import errno
import os
import stat

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _not_regular(mode):
    return f"{_kind(mode)}, not a regular file (never opened: reading it could block)"


def file_problem(path):
    """Why `path` cannot be opened as a data file (missing, or not a regular file), or None; never opens it."""
    try:
        info = os.stat(path)  # follows symlinks: the type of what `open` would reach
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        return "no such file" if error.errno == errno.ENOENT else f"cannot be read ({error.strerror or error})"
    return None if stat.S_ISREG(info.st_mode) else _not_regular(info.st_mode)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def entry_problem(path, root, *, folder=False):
    """Why the scan of `root` must not read the entry `path` (a file, or with `folder=True` a folder), or None.

    Example:
    >>> os.makedirs("/tmp/kt_scan/data", exist_ok=True); open("/tmp/kt_scan/secret.txt", "w").close()
    >>> if not os.path.lexists("/tmp/kt_scan/data/link.txt"): os.symlink("../secret.txt", "/tmp/kt_scan/data/link.txt")
    >>> entry_problem("/tmp/kt_scan/data/link.txt", "/tmp/kt_scan/data")
    'a symlink to /tmp/kt_scan/secret.txt, outside the data folder /tmp/kt_scan/data'
    """
    try:
        info = os.lstat(path)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISLNK(info.st_mode):
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as error:
            return "a symlink loop" if error.errno == errno.ELOOP else "a broken symlink (its target does not exist)"
        if not _inside(target, os.path.realpath(root)):
            return f"a symlink to {target}, outside the data folder {root}"
        try:
            info = os.stat(path)
        except OSError as error:
            return f"cannot be read ({error.strerror or error})"
    if folder:
        return None if stat.S_ISDIR(info.st_mode) else f"{_kind(info.st_mode)}, not a folder"
    return None if stat.S_ISREG(info.st_mode) else _not_regular(info.st_mode)


def scan_files(folder, accept, *, root=None):
    """The files under `folder` (recursively, sorted) that the data scan of `root` may read.

    Args:
        folder: the folder to walk (a class folder, or a folder given to `predict`).
        accept: `accept(name)` is True for a file name the caller reads (an image or `.txt` extension).
        root: the data folder the user named (default `folder`): symlinks must stay inside it.

    Returns:
        `(paths, skipped, ignored)`: the readable files, `(path, reason)` of each entry left out by the rule
        above (named to the user like a damaged file), and the count of hidden entries and other names left
        unread.
    """
    root = folder if root is None else root
    paths, skipped, ignored = [], [], 0
    for parent, dirs, files in os.walk(folder):  # followlinks=False: a symlinked folder is listed, not entered
        ignored += sum(1 for d in dirs if d.startswith("."))
        for name in sorted(d for d in dirs if not d.startswith(".") and os.path.islink(os.path.join(parent, d))):
            problem = entry_problem(os.path.join(parent, name), root, folder=True)
            if problem:
                skipped.append((os.path.join(parent, name), problem))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not accept(name):
                ignored += 1
                continue
            path = os.path.join(parent, name)
            problem = entry_problem(path, root)
            if problem:
                skipped.append((path, problem))
            else:
                paths.append(path)
    return paths, skipped, ignored


def class_folders(folder, *, root=None):
    """`(names, skipped)`: the visible subfolders of `folder` a scan enters (sorted), and `(path, reason)` of the
    visible entries that look like folders but break the rule (a symlink outside `root`, default `folder`; a loop)."""
    root = folder if root is None else root
    names, skipped = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not (os.path.isdir(path) or os.path.islink(path)):
            continue
        if os.path.islink(path) and not os.path.isdir(path) and os.path.exists(path):
            continue  # a symlink to a file: a loose file, counted where loose files are
        problem = entry_problem(path, root, folder=True)
        if problem is None:
            names.append(name)
        elif os.path.islink(path):
            skipped.append((path, problem))
    return names, skipped
