"""Reading CSV and JSON manifests, shared by image-classification (`sources`: `path,label`) and regression /
multi-label (`task_sources`: `path,target(s)` / `path,labels`) data.

One place for what every manifest has in common: the path column's header names, the rows of a CSV file (blank
lines skipped, a byte-order mark allowed, each row remembered as `"line N"`), the rows of a JSON list (`{"path":
..., <value key>: ...}` or `[path, value]`, each remembered as `"entry N"`), and the paths (relative to the
manifest's folder, or absolute; a missing file or a file listed twice is an error naming its row). What a row's
value means, and its own checks, stay with the reader of each kind. Every error is made by the caller's
`error(where, what)`, so each kind keeps its one-line message naming the manifest, the row and the form expected.
"""

import csv
import json
import os

PATH_COLUMNS = ("path", "file", "filename", "image", "filepath")


def csv_rows(manifest, error):
    """`[(where, cells)]`: the non-blank rows of a CSV manifest, `where` = `"line N"`."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:  # a byte-order mark is allowed
            reader = csv.reader(f)
            return [(f"line {reader.line_num}", row) for row in reader if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as err:
        raise error("encoding", f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise error(f"line {reader.line_num}", str(err)) from None


def is_header(cells, values_named):
    """Whether a CSV row is a header: its first cell names the path column (`PATH_COLUMNS`) and
    `values_named(rest)` says the other cells name the values."""
    return len(cells) >= 2 and cells[0].strip().lower() in PATH_COLUMNS and values_named(cells[1:])


def json_rows(manifest, keys, error):
    """`[(where, path, value)]` from a JSON manifest: a list of `{"path": ..., key: ...}` (the first of `keys`
    present) or `[path, value]` rows, `where` = `"entry N"`."""
    try:
        with open(manifest, encoding="utf-8-sig") as f:  # a byte-order mark is allowed
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise error("not valid JSON", str(err)) from None
    except UnicodeDecodeError as err:
        raise error("encoding", f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not isinstance(data, list):
        raise error("top level", f"expected a list of rows, got {type(data).__name__}")
    rows = []
    for i, row in enumerate(data, 1):
        key = next((k for k in keys if k in row), None) if isinstance(row, dict) else None
        if key is not None and "path" in row:
            rows.append((f"entry {i}", row["path"], row[key]))
        elif isinstance(row, (list, tuple)) and len(row) == 2:
            rows.append((f"entry {i}", *row))
        else:
            raise error(f"entry {i}", f"expected {{'path': ..., '{keys[0]}': ...}} or [path, {keys[0]}], got {row!r}")
    return rows


class PathResolver:
    """Resolves each row's path against the manifest's folder; an empty path, a missing file or a file listed
    again is `error(where, what)`.

    Example:
    >>> resolve = PathResolver("data/labels.csv", error)  # doctest: +SKIP
    >>> resolve("line 2", "cat/1.png")  # doctest: +SKIP
    '/home/me/data/cat/1.png'
    """

    def __init__(self, manifest, error):
        self.base, self.error, self.seen = os.path.dirname(os.path.abspath(manifest)), error, {}

    def __call__(self, where, path):
        if path is None or not str(path).strip():
            raise self.error(where, "empty path")
        full = os.path.normpath(os.path.join(self.base, os.path.expanduser(str(path))))
        if not os.path.isfile(full):
            raise self.error(where, f"file not found: {full}")
        if full in self.seen:  # would land in two splits, or carry two labels
            raise self.error(where, f"{full} is listed again (first at {self.seen[full]})")
        self.seen[full] = where
        return full
