"""The manifest reader shared by classification (`data.sources`) and task (`data.task_sources`) manifests: the
same path-column names, JSON rows and row errors (each a line naming the manifest and the row) for both kinds."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_transfer.data.manifests import PATH_COLUMNS
from keras_transfer.data.sources import find_images
from keras_transfer.data.task_sources import find_task_images
from keras_transfer.errors import KerasTransferError

pytestmark = pytest.mark.backend_free


@pytest.fixture
def folder(tmp_path):
    for i in range(4):
        Image.fromarray(np.full((12, 12, 3), 30 * i, np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


def _write(folder, name, text):
    (folder / name).write_text(text)
    return str(folder / name)


@pytest.mark.parametrize("column", PATH_COLUMNS)
def test_every_path_column_name_is_a_header_for_both_kinds(folder, column):
    rows = "0.png,a\n1.png,b\n2.png,a\n3.png,b\n"
    assert find_images(_write(folder, "c.csv", f"{column},label\n" + rows)).class_names == ["a", "b"]
    assert find_task_images(_write(folder, "m.csv", f"{column},labels\n" + rows), "multilabel").names == ["a", "b"]
    found = find_task_images(_write(folder, "r.csv", f"{column},age\n" + rows.replace("a", "1").replace("b", "2")),
                             "regression")
    assert found.names == ["age"] and found.targets[:, 0].tolist() == [1, 2, 1, 2]


@pytest.mark.parametrize("name, text, fragment", [
    ("x.csv", "path,label\n0.png,a\n0.png,b\n", "line 3: "),  # listed twice
    ("x.csv", "path,label\nmissing.png,a\n", "line 2: file not found"),
    ("x.json", '{"path": "0.png"}', "top level: expected a list of rows"),
    ("x.json", '[{"path": "0.png", "label": "a"}, 7]', "entry 2: expected"),
    ("x.json", "[{", "not valid JSON"),
])
def test_row_errors_read_the_same_for_both_kinds(folder, name, text, fragment):
    manifest = _write(folder, name, text)
    task_text = text.replace('"label"', '"labels"').replace(",a\n", ",a|b\n")
    task_manifest = _write(folder, "t" + name, task_text)
    for read in (lambda: find_images(manifest), lambda: find_task_images(task_manifest, "multilabel")):
        with pytest.raises(KerasTransferError, match=fragment) as error:
            read()
        assert "\n" not in str(error.value) and "Received:" in str(error.value)


def test_a_one_column_first_row_is_a_named_row_not_a_crash(folder):
    with pytest.raises(KerasTransferError, match="line 1: expected 2 columns, got 1"):
        find_task_images(_write(folder, "m.csv", "path\n0.png,a\n"), "multilabel")


def test_a_byte_order_mark_and_latin1_text(folder):
    (folder / "b.csv").write_bytes("\ufeffpath,labels\n0.png,a\n".encode("utf-8"))
    assert find_task_images(str(folder / "b.csv"), "multilabel").names == ["a"]
    (folder / "l.json").write_bytes(json.dumps([["0.png", "caf\xe9"]], ensure_ascii=False).encode("latin-1"))
    for read in (lambda: find_images(str(folder / "l.json")), lambda: find_task_images(str(folder / "l.json"),
                                                                                      "multilabel")):
        with pytest.raises(KerasTransferError, match="encoding: not UTF-8 text"):
            read()
