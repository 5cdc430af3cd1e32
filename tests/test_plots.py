"""Plots: the history over all phases with its boundaries, the confusion matrix, atomic PNGs, and the install
hint when matplotlib is missing."""

import os
import sys

import numpy as np
import pytest
from PIL import Image

from keras_transfer import plot_confusion_matrix, plot_history
from keras_transfer.history import write_history
from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.evaluation import report_from_probabilities, write_report
from keras_transfer.runs.folder import write_history_plot

pytestmark = pytest.mark.backend_free  # runs on the first backend only (tests/run.sh)

ROWS = [{"phase": "head", "epoch": 0, "loss": 1.2, "val_loss": 1.3, "accuracy": 0.4, "val_accuracy": 0.35},
        {"phase": "head", "epoch": 1, "loss": 0.9, "val_loss": 1.1, "accuracy": 0.6, "val_accuracy": 0.5},
        {"phase": "fine_tune", "epoch": 2, "loss": 0.5, "val_loss": 0.8, "accuracy": 0.8, "val_accuracy": 0.7},
        {"phase": "fine_tune", "epoch": 3, "loss": 0.3, "val_loss": 0.7, "accuracy": 0.9, "val_accuracy": 0.75}]


def assert_real_png(path, min_width=300, min_height=200):
    """The file decodes as a PNG of a reasonable size with a drawing on it (not a blank canvas)."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height, image.size
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    assert pixels.std() > 10
    return pixels


def test_plot_history_of_a_run_folder_draws_both_phases(tmp_path):
    write_history(str(tmp_path), ROWS)

    boundaries = plot_history(str(tmp_path), str(tmp_path / "history.png"))

    assert boundaries == [2]  # the fine-tuning phase starts after epoch 2
    pixels = assert_real_png(tmp_path / "history.png", min_width=800)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []
    # rows, columns and the history.json path give the same boundaries
    assert plot_history(ROWS, str(tmp_path / "rows.png")) == [2]
    assert plot_history(str(tmp_path / "history.json"), str(tmp_path / "file.png")) == [2]
    assert plot_history(ROWS[:2], str(tmp_path / "one_phase.png")) == []


def test_plot_history_without_validation_or_accuracy(tmp_path):
    rows = [{"phase": "head", "loss": 1.0}, {"phase": "head", "loss": 0.7}, {"phase": "fine_tune", "loss": None}]
    assert plot_history(rows, str(tmp_path / "h.png")) == [2]
    assert_real_png(tmp_path / "h.png")


def test_plot_history_bad_inputs(tmp_path):
    with pytest.raises(KerasTransferError, match="No history at"):
        plot_history(str(tmp_path), str(tmp_path / "h.png"))
    with pytest.raises(KerasTransferError, match="non-empty 'loss' column"):
        plot_history([], str(tmp_path / "h.png"))


def test_plot_confusion_matrix(tmp_path):
    matrix = [[5, 1, 0], [2, 3, 1], [0, 0, 6]]
    path = plot_confusion_matrix(matrix, ["cat", "dog", "emu"], str(tmp_path / "cm.png"))
    assert path == str(tmp_path / "cm.png")
    assert_real_png(path)
    with pytest.raises(KerasTransferError, match="matrix must be square with one row per class name"):
        plot_confusion_matrix(matrix, ["cat", "dog"], str(tmp_path / "bad.png"))


def test_run_folder_gets_history_png(tmp_path):
    write_history(str(tmp_path), ROWS)
    assert write_history_plot(str(tmp_path)) == str(tmp_path / "history.png")
    assert_real_png(tmp_path / "history.png")


def test_without_matplotlib_the_message_says_how_to_install_it(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="keras_transfer")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] or ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)

    with pytest.raises(KerasTransferError, match=r'pip install "keras-transfer\[plots\]"'):
        plot_history(ROWS, str(tmp_path / "h.png"))
    with pytest.raises(KerasTransferError, match=r'pip install "keras-transfer\[plots\]"'):
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], str(tmp_path / "cm.png"))

    # a run and a report go on without the plots, and say so
    write_history(str(tmp_path), ROWS)
    assert write_history_plot(str(tmp_path)) is None
    assert 'pip install "keras-transfer[plots]"' in caplog.text
    report = report_from_probabilities(np.eye(2), [0, 1], ["a", "b"])
    written = write_report(report, str(tmp_path / "eval"))
    assert [os.path.basename(p) for p in written] == ["report.json", "report.txt"]
    assert not os.path.exists(tmp_path / "history.png") and not os.path.exists(tmp_path / "h.png")


def test_a_failed_write_keeps_the_previous_png_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "cm.png"
    plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], str(path))
    before = path.read_bytes()

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_confusion_matrix([[2, 0], [1, 1]], ["a", "b"], str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["cm.png"]
