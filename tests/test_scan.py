"""`data.scan`: one rule for image folders, text folders and `predict`: nothing that is not a regular file is
opened (a FIFO named `x.png` would block `open` forever), and no symlink leads out of the data folder or loops.

Every test that meets a FIFO runs under `time_limit` (SIGALRM): a regression fails in seconds instead of hanging.
"""

import contextlib
import os
import signal
import socket
import warnings

import numpy as np
import pytest
from PIL import Image

from keras_transfer.data.scan import entry_problem, file_problem, scan_files
from keras_transfer.data.sources import find_images
from keras_transfer.data.texts import read_texts, read_unlabelled_texts
from keras_transfer.models.classifier import build_classifier
from keras_transfer.serving.predict import predict

LIMIT_S = 30  # a scan of a dozen files takes well under a second; a blocked open() never returns


@contextlib.contextmanager
def time_limit(seconds=LIMIT_S):
    """Fails the test with TimeoutError when the block runs longer than `seconds` (an open() blocked on a FIFO is
    interrupted: a signal handler that raises stops the system call from being retried, PEP 475)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: something blocked (a FIFO opened?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _png(path, seed):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)


def _data(root, modality):
    """Two classes `a`, `b` of 3 good files each (PNG images or `.txt` texts)."""
    for name in ("a", "b"):
        os.makedirs(os.path.join(root, name))
        for i in range(3):
            if modality == "image":
                _png(os.path.join(root, name, f"{i}.png"), i + (10 if name == "b" else 0))
            else:
                with open(os.path.join(root, name, f"{i}.txt"), "w") as f:
                    f.write(f"text {i} of {name}")
    return str(root)


def _socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    return server


def _hostile(root, ext, outside):
    """Adds the entries the rule refuses to class `a`, by file name: what each must be skipped as."""
    a = os.path.join(root, "a")
    os.mkfifo(os.path.join(a, f"pipe{ext}"))
    server = _socket(os.path.join(a, f"s{ext}"))
    os.symlink("/dev/zero", os.path.join(a, f"zero{ext}"))  # a device, reached through a link out of the folder
    os.symlink(outside, os.path.join(a, f"out{ext}"))
    os.symlink(f"loop{ext}", os.path.join(a, f"loop{ext}"))
    os.symlink(os.path.dirname(outside), os.path.join(a, "elsewhere"))  # a folder out of the data folder
    os.symlink("..", os.path.join(a, "up"))  # a folder inside it (a cycle if followed): not entered, not named
    return server, {f"pipe{ext}": "FIFO", f"s{ext}": "socket", f"zero{ext}": "outside the data folder",
                    f"out{ext}": "outside the data folder", f"loop{ext}": "symlink loop",
                    "elsewhere": "outside the data folder"}


def _read(root, modality):
    with time_limit(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = find_images(root) if modality == "image" else read_texts(root)
    return found, {os.path.basename(path): reason for path, reason in found.skipped}


@pytest.mark.backend_free
@pytest.mark.parametrize("modality", ["image", "text"])
def test_image_and_text_folders_skip_and_name_the_same_hostile_entries(tmp_path, modality):
    outside = tmp_path / f"secret.{'png' if modality == 'image' else 'txt'}"
    _png(outside, 99) if modality == "image" else outside.write_text("a secret, outside the data folder")
    root = _data(tmp_path / "data", modality)
    server, expected = _hostile(root, ".png" if modality == "image" else ".txt", str(outside))
    try:
        found, skipped = _read(root, modality)
    finally:
        server.close()
    assert sorted(skipped) == sorted(expected)  # each named, none read, the same for both modalities
    for name, words in expected.items():
        assert words in skipped[name], (name, skipped[name])
    assert len(found.paths) == 6 and found.class_names == ["a", "b"]
    texts = getattr(found, "texts", {})
    assert not any("secret" in text for text in texts.values())


@pytest.mark.backend_free
@pytest.mark.parametrize("modality", ["image", "text"])
def test_a_symlinked_class_folder_outside_is_named_and_one_inside_is_read(tmp_path, modality):
    root = _data(tmp_path / "data", modality)
    _data(tmp_path / "other", modality)
    os.symlink(str(tmp_path / "other" / "a"), os.path.join(root, "c"))  # a class folder out of the data folder
    os.symlink("b", os.path.join(root, "d"))  # a class folder that is another one, inside it
    found, skipped = _read(root, modality)
    assert "outside the data folder" in skipped["c"]
    assert found.class_names == ["a", "b", "d"] and len(found.paths) == 9


@pytest.mark.backend_free
def test_file_problem_names_the_kind_without_opening():
    with time_limit():
        assert "character device" in file_problem("/dev/zero")
        assert file_problem("/no/such/file.png") == "no such file"
        assert "a folder" in file_problem("/")
        assert file_problem(__file__) is None


@pytest.mark.backend_free
def test_scan_files_counts_hidden_and_other_names(tmp_path):
    root = _data(tmp_path / "data", "image")
    (tmp_path / "data" / "a" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "data" / "a" / "notes.md").write_text("x")
    paths, skipped, ignored = scan_files(os.path.join(root, "a"), lambda name: name.endswith(".png"), root=root)
    assert [os.path.basename(p) for p in paths] == ["0.png", "1.png", "2.png"] and skipped == [] and ignored == 2
    assert entry_problem(os.path.join(root, "a"), root, folder=True) is None


def test_predict_names_a_fifo_socket_device_and_outside_link_without_blocking(tmp_path):
    root = _data(tmp_path / "data", "image")
    outside = tmp_path / "secret.png"
    _png(outside, 99)
    server, expected = _hostile(root, ".png", str(outside))
    os.symlink("/dev/zero", str(tmp_path / "device.png"))  # given by name: its kind is read, it is not opened
    model = build_classifier("tinyvgg", class_names=["a", "b"], weights=None, input_size=32)
    try:
        with time_limit():
            results = predict(model, [root, str(tmp_path / "device.png")], top_k=1)
    finally:
        server.close()
    skipped = {os.path.basename(r["path"]): r["skipped"] for r in results if "skipped" in r}
    assert sorted(skipped) == sorted(list(expected) + ["device.png"])
    assert "character device" in skipped["device.png"] and "FIFO" in skipped["pipe.png"]
    assert sum(bool(r.get("top")) for r in results) == 6


@pytest.mark.backend_free
def test_predicting_texts_names_a_fifo_and_a_link_outside(tmp_path):
    root = _data(tmp_path / "data", "text")
    outside = tmp_path / "secret.txt"
    outside.write_text("a secret")
    server, expected = _hostile(root, ".txt", str(outside))
    try:
        with time_limit():
            ids, texts, skipped = read_unlabelled_texts([root])
    finally:
        server.close()
    assert sorted(os.path.basename(i) for i, _ in skipped) == sorted(expected)
    assert len(texts) == 6 and not any("secret" in t for t in texts)
