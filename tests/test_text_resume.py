"""Resume of a text run through the image runs' machinery, and the run used from a new interpreter: a run
interrupted after its first fine-tuning epoch (an exception raised right after `TrainingState` saved it, where a
crash or Ctrl-C would stop it) refuses to resume on an edited text, then `evaluate`, `predict`, `export` and
`train --resume` run in a process that never built a text model (nothing imported the module defining
`SequencePooling`, nor KerasHub), and the resumed run ends in its phase, with its optimizer, at the same total of
epochs and steps. The four commands run in one subprocess (each new process pays Keras's start-up).

The run trains the tiny random BERT preset folder of `conftest.tiny_bert_folder`: what is loaded (the KerasHub
backbone and tokenizer, `SequencePooling`, the run's preprocessor folder) and resumed does not depend on the
encoder's size; the real MiniLM trains in test_text_runs."""

import json
import math
import os
import subprocess
import sys
import textwrap

from conftest import tiny_bert_folder
from keras_transfer.cli import main
from keras_transfer.training.state import TrainingState, read_checkpoint_state
from test_cli import read_json
from test_text_runs import _write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 8
RUN = ["--modality", "text", "--recipe", "two_phase", "--epochs", "1", "--fine-tune-epochs", "2", "--batch-size",
       str(BATCH), "--sequence-length", "16", "--validation-split", "0.25", "--test-split", "0.25", "--seed", "0"]
SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    import keras
    from keras_transfer.cli import main
    run, work = sys.argv[1:3]
    fresh = "keras_transfer>SequencePooling" not in keras.saving.get_custom_objects() and "keras_hub" not in sys.modules
    codes, printed = {"evaluate": main(["evaluate", run, "--out", work + "/eval"])}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        codes["predict"] = main(["predict", run, "Return the tangent of x.", "--format", "json"])
    codes["export"] = main(["export", run, "--format", "keras", "--out", work + "/exported.keras"])
    codes["resume"] = main(["train", "--resume", "--out", run])
    print("RESULT " + json.dumps({"fresh": fresh, "codes": codes, "predicted": printed.getvalue()}))
""")


class Interrupted(Exception):
    pass


def test_an_interrupted_text_run_is_used_and_resumed_to_the_same_total_of_steps_from_a_new_interpreter(
        tmp_path, monkeypatch, capsys):
    source, run = _write(tmp_path / "texts.csv"), str(tmp_path / "run")
    saved = TrainingState.on_epoch_end

    def stop_after_the_first_fine_tuning_epoch(self, epoch, logs=None):
        saved(self, epoch, logs)
        if len(self.rows) == 2:
            raise Interrupted("injected after the first fine-tuning epoch was saved")

    monkeypatch.setattr(TrainingState, "on_epoch_end", stop_after_the_first_fine_tuning_epoch)
    backbone = ["--backbone", tiny_bert_folder(str(tmp_path / "tiny_bert"))]
    assert main(["train", source, *RUN, *backbone, "--out", run]) == 1
    assert "Continue with --resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert os.path.isfile(os.path.join(run, "best.keras")) and os.path.isfile(os.path.join(run, "last.keras"))
    steps = math.ceil(len(read_json(os.path.join(run, "splits.json"))["train"]) / BATCH)
    stopped = read_checkpoint_state(os.path.join(run, "last.keras"))
    assert (stopped["phase"], stopped["phase_epochs_done"], stopped["iterations"]) == ("fine_tune", 1, steps)

    with open(source) as f:
        original = f.read()
    with open(source, "w") as f:
        f.write(original.replace("Return the square root of x.", "Return the square root of y."))
    assert main(["train", "--resume", "--out", run]) == 2
    refused = capsys.readouterr().err
    assert "changed since the run started" in refused and "texts.csv:2" in refused, refused
    with open(source, "w") as f:
        f.write(original)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, run, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=600)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and result, done.stderr[-3000:]
    result = json.loads(result[0][len("RESULT "):])
    assert result["fresh"], "the new interpreter had the text model's classes registered before loading"
    assert result["codes"] == {"evaluate": 0, "predict": 0, "export": 0, "resume": 0}, done.stderr[-3000:]
    assert "cannot be loaded" not in done.stderr and "unknown layer class" not in done.stderr

    report = read_json(tmp_path / "eval" / "report.json")
    assert report["n"] == 6 and sum(map(sum, report["confusion_matrix"])) == 6
    predicted = json.loads(result["predicted"])
    assert predicted[0]["top"][0]["class"] in ("maths", "network", "time")
    assert os.path.isfile(tmp_path / "exported.keras")
    history = read_json(os.path.join(run, "history.json"))
    assert history["phase"] == ["head", "fine_tune", "fine_tune"] and history["epoch"] == [0, 1, 2]
    state = read_json(os.path.join(run, "state.json"))
    assert state["epochs_done"] == 3 and state["phase"] == "fine_tune" and state["phase_done"]
    assert state["iterations"] == 2 * steps  # the fine-tuning optimizer continued from its saved step count
    assert os.path.isfile(os.path.join(run, "history.png"))
