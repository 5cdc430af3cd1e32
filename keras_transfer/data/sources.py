"""Finds labelled images (a folder of class subfolders, a `train/` `val/` `test/` layout, or a CSV/JSON
manifest), checks them, splits them and loads them as `tf.data` pipelines.

The scan costs a listing plus a header read per file (`images.read_header`: format, size, mode, EXIF
orientation, and which decoder reads it), never a decode: a file that is not an image at all is named and
skipped here; one whose body is damaged is named and skipped when the pipeline first decodes it, without
stopping the epoch (`pipeline.SkippedFiles`). `strict=True` decodes every file at scan time instead and stops
before training on any failure.
"""

import concurrent.futures
import dataclasses
import functools
import os
import warnings

from keras_transfer.data.images import ImageDecodeError, is_image_name, read_header, read_image
from keras_transfer.data.manifests import PathResolver, csv_rows, is_header, json_rows
from keras_transfer.data.pipeline import SkippedFiles, make_dataset
from keras_transfer.data.scan import class_folders, scan_files
from keras_transfer.data.splits import SPLITS, split_images, summarize
from keras_transfer.errors import KerasTransferError

MANIFEST_EXTENSIONS = (".csv", ".json")
_HEADER_LABEL = ("label", "class", "class_name")  # the path column's names: `manifests.PATH_COLUMNS`


@dataclasses.dataclass
class LabelledImages:
    """Readable images with their labels, and what was left out on the way.

    Attributes:
        paths: absolute paths, each with a readable image header (with `strict`, each decoded once).
        labels: int index into `class_names` per path.
        class_names: sorted class names.
        skipped: `(path, reason)` of each file that could not be read.
        sizes: `(height, width)` per path (after EXIF rotation).
        readers: the decoder per path (`"jpeg"`, `"png"` or `"pil"`, see `images.read_header`).
        ignored: count of hidden and non-image files left out unread.
        dropped: `(class_name, reason)` of each class left out (no readable image).
        splits: `"train"`/`"val"`/`"test"` per path for a `train/` `val/` `test/` layout, else None.
        source: the folder or manifest read; kind: `"folder"`, `"layout"` or `"manifest"`.
    """

    paths: list
    labels: list
    class_names: list
    skipped: list = dataclasses.field(default_factory=list)
    sizes: list = dataclasses.field(default_factory=list)
    ignored: int = 0
    dropped: list = dataclasses.field(default_factory=list)
    splits: list = None
    source: str = ""
    kind: str = "folder"
    readers: list = None


def _visible_dirs(folder, refused, root):
    """The class (or split) folders of `folder`; a symlinked one that breaks `scan`'s rule goes to `refused`."""
    names, skipped = class_folders(folder, root=root)
    refused.update(skipped)
    return names


def walk_images(folder, *, root=None):
    """`(image_paths, ignored_count, skipped)` under `folder`, recursively, under `data.scan`'s rule (a FIFO,
    socket or device, a symlink outside `root` (default `folder`) or a loop is in `skipped`, never opened);
    hidden files and folders are not entered."""
    paths, skipped, ignored = scan_files(folder, is_image_name, root=root)
    return paths, ignored, skipped


def _ignored_at(folder):
    """Entries of `folder` that are not visible subfolders: loose files, hidden files and hidden folders."""
    return sum(1 for f in os.listdir(folder) if f.startswith(".") or not os.path.isdir(os.path.join(folder, f)))


def _scan_folder(folder):
    """`(entries, ignored, kind, refused)`: entries are `(path, class_name, split_or_None)`; `refused` maps each
    entry `data.scan` does not let the scan read to why."""
    folder = os.path.abspath(folder)
    refused = {}
    top = _visible_dirs(folder, refused, folder)
    ignored = _ignored_at(folder)
    layout = "train" in top and set(top) <= set(SPLITS)  # a class named "train" beside "cat" is no layout
    entries = []
    for split in (top if layout else [None]):
        base = os.path.join(folder, split) if split else folder
        if split:
            ignored += _ignored_at(base)
        for name in _visible_dirs(base, refused, folder):
            found, skipped, refused_here = walk_images(os.path.join(base, name), root=folder)
            ignored += skipped
            refused.update(refused_here)
            entries.extend((p, name, split) for p in found)  # absolute: the walk starts from an absolute folder
            entries.extend((p, name, split) for p, _ in refused_here)  # named, and its class counted as listed
            if not found and not refused_here:
                entries.append((None, name, split))  # remembers the class, so that an empty one is named
    return entries, ignored, "layout" if layout else "folder", refused


def _manifest_error(manifest, where, what):
    return KerasTransferError(f"Manifest {manifest}, {where}: {what}. Each row needs `path,label` (path relative "
                              f"to the manifest's folder, or absolute). Received: source={manifest!r}")


def _manifest_rows(manifest):
    """`[(where, path, label)]` from a CSV (optional `path,label` header) or a JSON list (`data.manifests`)."""
    error = functools.partial(_manifest_error, manifest)
    if manifest.lower().endswith(".json"):
        return json_rows(manifest, ("label",), error)
    rows = csv_rows(manifest, error)
    if rows and is_header(rows[0][1], lambda rest: len(rest) == 1 and rest[0].strip().lower() in _HEADER_LABEL):
        rows = rows[1:]
    out = []
    for where, row in rows:
        if len(row) != 2:
            raise _manifest_error(manifest, where, f"expected 2 columns, got {len(row)}: {row!r}")
        out.append((where, row[0].strip(), row[1].strip()))
    return out


def _scan_manifest(manifest):
    """`(entries, 0, "manifest")`; a missing file, an empty label or a file listed twice is an error naming its row."""
    resolve = PathResolver(manifest, functools.partial(_manifest_error, manifest))
    entries = []
    for where, path, label in _manifest_rows(manifest):
        label = "" if label is None else str(label).strip()
        if not label:
            raise _manifest_error(manifest, where, f"empty label for {path!r}")
        entries.append((resolve(where, path), label, None))
    if not entries:
        raise _manifest_error(manifest, "whole file", "no rows")
    return entries, 0, "manifest"


def _sorted_classes(names):
    """Sorted class names; all-integer names sort as numbers (`2` before `10`)."""
    names = set(names)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


_STRICT_CHUNK = 256  # files decoded at a time under strict: memory stays bounded whatever the data size


def _readable(path, decode):
    """`(height, width, reader)` of `path`, or the `ImageDecodeError` saying why it cannot be read."""
    try:
        path.encode("utf-8")  # tf.data and JSON carry paths as UTF-8 text
    except UnicodeEncodeError:
        return ImageDecodeError(path, "its name is not valid UTF-8 (rename the file)")
    try:
        header = read_header(path)
        if decode:
            read_image(path)
    except ImageDecodeError as error:
        return error
    rotated = header.orientation in (5, 6, 7, 8)  # a quarter turn swaps height and width
    return (header.width, header.height, header.reader) if rotated else (header.height, header.width, header.reader)


def _read_all(paths, strict):
    """`{path: (height, width, reader) or ImageDecodeError}`: a header read per file, in one thread; `strict`
    decodes every file too, in a few threads (PIL releases the GIL), a bounded chunk at a time."""
    if not strict:
        return {path: _readable(path, False) for path in paths}
    found = {}
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(paths), _STRICT_CHUNK):
            chunk = paths[start:start + _STRICT_CHUNK]
            found.update(zip(chunk, pool.map(lambda path: _readable(path, True), chunk)))
    return found


def _check_source(source):
    source = os.fspath(source)
    if os.path.isdir(source):
        return _scan_folder(source)  # `data.scan`'s rule: no FIFO opened, no symlink followed out of it
    if os.path.isfile(source) and source.lower().endswith(MANIFEST_EXTENSIONS):
        return _scan_manifest(source) + ({},)
    what = "is not a folder or a .csv/.json manifest" if os.path.exists(source) else "not found"
    raise KerasTransferError(f"Data source {source} {what}. Give a folder of class subfolders, a folder with "
                             f"train/ val/ test/ subfolders, or a CSV/JSON manifest of path,label rows. "
                             f"Received: source={source!r}")


def find_images(source, *, strict=False):
    """Finds labelled images in a folder of class subfolders, a `train/` `val/` `test/` layout or a manifest.

    Each candidate's header is read (a listing plus a few bytes per file, no decode); files that are not
    images are skipped and named; a damaged body is found, named and skipped when training first decodes
    it. `strict=True` decodes every file here instead, and one error lists all that fail. Hidden and non-image files are counted, not read. A class left with no readable
    image is dropped with a warning, as long as two classes remain.

    Args:
        source: a folder, or a `.csv`/`.json` manifest of `path,label` rows.
        strict: decode every file now and raise on any unreadable one instead of skipping it.

    Returns:
        A `LabelledImages`.

    Raises:
        KerasTransferError: missing source, bad manifest row, unreadable files under `strict`, or fewer
            than two classes with readable images.

    Example:
    >>> import numpy as np; from PIL import Image
    >>> for c in ("a", "b"):
    ...     os.makedirs(f"/tmp/kt_find/{c}", exist_ok=True)
    ...     Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(f"/tmp/kt_find/{c}/x.png")
    >>> find_images("/tmp/kt_find").class_names
    ['a', 'b']
    """
    entries, ignored, kind, refused = _check_source(source)
    read = _read_all([path for path, _, _ in entries if path and path not in refused], strict)
    read.update({path: ImageDecodeError(path, reason) for path, reason in refused.items()})
    skipped = [(path, result.reason) for path, result in read.items() if isinstance(result, ImageDecodeError)]
    if strict and skipped:
        listing = "; ".join(f"{path} ({reason})" for path, reason in skipped)
        raise KerasTransferError(f"{len(skipped)} file(s) in {source} cannot be read as images (strict mode stops "
                                 f"before training; without it they are skipped): {listing}. Received: strict=True")
    good = [(p, name, split) for p, name, split in entries if p and not isinstance(read[p], ImageDecodeError)]
    all_classes = _sorted_classes(name for _, name, _ in entries)
    kept = _sorted_classes(name for _, name, _ in good)
    listed, kept_set = {name for p, name, _ in entries if p}, set(kept)  # one pass, whatever the number of classes
    dropped = [(name, "no readable image" if name in listed else "empty folder")
               for name in all_classes if name not in kept_set]
    if len(kept) < 2:
        raise KerasTransferError(
            f"Data source {source} needs at least two classes with readable images; found {len(kept)} "
            f"({', '.join(kept) or 'none'}) of {len(all_classes)} class(es) ({', '.join(all_classes) or 'none'}), "
            f"{len(skipped)} unreadable file(s). Received: source={os.fspath(source)!r}")
    for name, reason in dropped:
        warnings.warn(f"Class {name!r} in {source} is left out: {reason}.", stacklevel=2)
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} unreadable file(s) in {source}: "
                      + "; ".join(f"{p} ({r})" for p, r in skipped), stacklevel=2)
    index = {name: i for i, name in enumerate(kept)}
    return LabelledImages(paths=[p for p, _, _ in good], labels=[index[n] for _, n, _ in good], class_names=kept,
                          skipped=skipped, sizes=[tuple(read[p][:2]) for p, _, _ in good], ignored=ignored,
                          dropped=dropped, splits=[s for _, _, s in good] if kind == "layout" else None,
                          source=os.path.abspath(source), kind=kind, readers=[read[p][2] for p, _, _ in good])


@dataclasses.dataclass
class ImageFolderData:
    """Training, validation and test `tf.data.Dataset`s of (float32 RGB 0-255 images, int32 labels).

    `val`/`test` are None when empty; `splits` is the `Splits` they came from, `summary` its `DataSummary`;
    `skipped` the `pipeline.SkippedFiles` of each split, filled as the pipelines decode.
    """

    train: object
    val: object
    class_names: list
    counts: dict
    test: object = None
    splits: object = None
    summary: object = None
    skipped: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self):
        return len(self.class_names)

    def skipped_while_training(self):
        """`[{"path", "reason", "split"}]`: the files that failed to decode in the pipelines so far (each
        pipeline's last pass ended first: `SkippedFiles.finish`)."""
        for files in self.skipped.values():
            files.finish()
        return [{"path": path, "reason": reason, "split": split}
                for split, files in self.skipped.items() for path, reason in sorted(files.skipped.items())]


def load_image_folder(directory, *, image_size, batch_size=32, validation_split=0.2, test_split=0.0, seed=1337,
                      strict=False, cache=None, antialias=False):
    """Loads a folder of class subfolders (or a layout or manifest, see `find_images`) as `tf.data` sets.

    Images are decoded by TensorFlow (or `read_image` where only PIL reads them exactly: EXIF, 16-bit,
    CMYK, ...), resized to `image_size` (bilinear), kept as raw RGB values in [0, 255] (the model
    preprocesses them itself), batched and prefetched; the training set is reshuffled each epoch. The same
    `seed` gives the same split.

    Args:
        directory: a folder with one subfolder of images per class, or see `find_images`.
        image_size: the square side the model takes (e.g. `spec.default_size`).
        batch_size: batch size.
        validation_split: share of each class held out for validation (ignored for a train/val/test layout).
        test_split: share of each class held out for testing.
        seed: seed of the split and the shuffling.
        strict: decode every file before training and raise on any unreadable one instead of skipping it.
        cache: None, `"memory"` or a file path prefix (one cache per split, `<prefix>.train` ...): cache
            decoded images (see `pipeline.make_dataset`).
        antialias: antialiased downscaling (see `pipeline.make_dataset`).

    Returns:
        An `ImageFolderData`.

    Example:
    >>> data = load_image_folder("/tmp/kt_find", image_size=8, validation_split=0)  # doctest: +SKIP
    """
    found = find_images(directory, strict=strict)
    splits = split_images(found, validation_split=validation_split, test_split=test_split, seed=seed)
    reader_of = dict(zip(found.paths, found.readers))
    sets, skipped = {}, {}
    for name in SPLITS:
        paths, labels = splits.paths(name), splits.labels(name)
        if not paths:
            sets[name] = None
            continue
        skipped[name] = SkippedFiles(paths, name)
        split_cache = cache if cache in (None, "memory") else f"{os.fspath(cache)}.{name}"
        sets[name] = make_dataset(paths, labels, image_size=image_size, batch_size=batch_size,
                                  shuffle=name == "train", seed=seed, cache=split_cache, antialias=antialias,
                                  readers=[reader_of[p] for p in paths], skipped=skipped[name])
    if sets["train"] is None:
        raise KerasTransferError(f"No training images in {directory}. Received: data_dir={directory!r}")
    counts = {name: sum(splits.counts(s).get(name, 0) for s in SPLITS) for name in splits.class_names}
    return ImageFolderData(train=sets["train"], val=sets["val"], test=sets["test"], class_names=splits.class_names,
                           counts=counts, splits=splits, summary=summarize(splits), skipped=skipped)
