"""Resume of a text run through the image runs' machinery: a run interrupted after an epoch (an exception raised
right after `TrainingState` saved it, where a crash or Ctrl-C would stop it) continues with
`keras-transfer train --resume` in its phase, with its optimizer, to the same total of epochs and steps; a text
edited in between is refused. The run trains a tiny random BERT saved as a KerasHub preset folder (resume
does not depend on the encoder's size; the real MiniLM runs in test_text_runs and test_text_run_cli)."""

import math
import os

from keras_transfer.cli import main
from keras_transfer.models.classifier import get_backbone
from keras_transfer.training.state import TrainingState, read_checkpoint_state
from test_cli import read_json
from test_text_caching import tiny_text_model
from test_text_runs import _write

BATCH = 8
RUN = ["--modality", "text", "--recipe", "two_phase", "--epochs", "2", "--fine-tune-epochs", "2", "--batch-size",
       str(BATCH), "--sequence-length", "8", "--validation-split", "0.25", "--seed", "0"]


class Interrupted(Exception):
    pass


def tiny_bert_folder(folder):
    """The 2-layer, 16-wide BERT of test_text_caching saved as a KerasHub preset folder; returns `folder`."""
    model, preprocessor = tiny_text_model()
    get_backbone(model).save_to_preset(folder)
    preprocessor.tokenizer.save_to_preset(folder)
    return folder


def test_an_interrupted_text_run_resumes_to_the_same_total_of_steps(tmp_path, monkeypatch, capsys):
    source, out = _write(tmp_path / "texts.csv"), str(tmp_path / "run")
    run = ["--backbone", tiny_bert_folder(str(tmp_path / "tiny_bert")), *RUN]
    saved = TrainingState.on_epoch_end

    def stop_after_the_third_epoch(self, epoch, logs=None):
        saved(self, epoch, logs)
        if len(self.rows) == 3:
            raise Interrupted("injected after the first fine-tuning epoch was saved")

    monkeypatch.setattr(TrainingState, "on_epoch_end", stop_after_the_third_epoch)
    assert main(["train", source, *run, "--out", out]) == 1
    assert "Continue with --resume" in capsys.readouterr().err
    monkeypatch.undo()
    steps = math.ceil(len(read_json(os.path.join(out, "splits.json"))["train"]) / BATCH)
    stopped = read_checkpoint_state(os.path.join(out, "last.keras"))
    assert (stopped["phase"], stopped["phase_epochs_done"], stopped["iterations"]) == ("fine_tune", 1, steps)

    with open(source) as f:
        original = f.read()
    with open(source, "w") as f:
        f.write(original.replace("Return the square root of x.", "Return the square root of y."))
    assert main(["train", "--resume", "--out", out]) == 2
    refused = capsys.readouterr().err
    assert "changed since the run started" in refused and "texts.csv:2" in refused, refused
    with open(source, "w") as f:
        f.write(original)

    assert main(["train", "--resume", "--out", out]) == 0, capsys.readouterr().err
    history = read_json(os.path.join(out, "history.json"))
    assert history["phase"] == ["head", "head", "fine_tune", "fine_tune"] and history["epoch"] == [0, 1, 2, 3]
    state = read_json(os.path.join(out, "state.json"))
    assert state["epochs_done"] == 4 and state["phase"] == "fine_tune" and state["phase_done"]
    assert state["iterations"] == 2 * steps  # the fine-tuning optimizer continued from its saved step count
    assert os.path.isfile(os.path.join(out, "history.png")) and os.path.isfile(os.path.join(out, "best.keras"))
