"""Text runs used from a new interpreter: text regression and text multi-label runs on real texts (standard-library
docstrings) trained through the one run driver (Python and CLI), then loaded, predicted, evaluated and exported as a
raw-string SavedModel from a new interpreter that never names the modality; and the resume of a text run through the
image runs' machinery (a classification run interrupted after its first fine-tuning epoch, refused on an edited
text, then evaluated, predicted, exported and resumed from that same new interpreter, before it loads anything
else). ONE new interpreter serves the three runs: each new process pays the imports of TensorFlow, Keras and
KerasHub. The encoder is the tiny random BERT preset folder of `conftest.tiny_bert_folder`, its vocabulary the
texts' words: what is loaded (the KerasHub backbone and tokenizer, `SequencePooling`, the run's preprocessor
folder) and resumed does not depend on the encoder's size; the real MiniLM trains in test_text_runs."""

import contextlib
import csv
import io
import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from conftest import tiny_bert_folder
from keras_transfer.cli import main
from keras_transfer.data.texts import read_task_texts
from keras_transfer.errors import KerasTransferError
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.train import train_from_folder
from keras_transfer.training.state import TrainingState, read_checkpoint_state
from test_cli import read_json
from test_text_runs import TEXTS, _write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL = [text for texts in TEXTS.values() for text in texts]
TAGS = ("return", "socket")  # a tag per word a docstring holds, and "short" (at most 6 words) or "long"
SETTINGS = dict(modality="text", recipe="two_phase", epochs=1, fine_tune_epochs=1, batch_size=8, sequence_length=12,
                validation_split=0.25, test_split=0.25, seed=0)
BATCH = 8  # the resumed run's
RESUMED = ["--modality", "text", "--recipe", "two_phase", "--epochs", "1", "--fine-tune-epochs", "2", "--batch-size",
           str(BATCH), "--sequence-length", "16", "--validation-split", "0.25", "--test-split", "0.25", "--seed", "0"]
# `kt.export` checks the raw-string SavedModel it wrote: it loads the folder back from disk
# (`load_text_saved_model`), serves it raw strings (`export_text.CHECK_TEXTS`: a short, a long and a one-letter text)
# and returns the largest difference to the Keras model on them (`max_abs_difference`, which the tests bound by
# 1e-4), so the script does not load and serve it a second time; that the folder also loads from its final path,
# its class names included, is test_text_run_cli's export test.
SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    import keras
    from keras_transfer.cli import main
    runs, texts, resumed, work = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    # the interrupted run first, while nothing has registered a text class or imported KerasHub
    fresh = "keras_transfer>SequencePooling" not in keras.saving.get_custom_objects() and "keras_hub" not in sys.modules
    codes, printed = {"evaluate": main(["evaluate", resumed, "--out", work + "/eval"])}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        codes["predict"] = main(["predict", resumed, "Return the tangent of x.", "--format", "json"])
    codes["export"] = main(["export", resumed, "--format", "keras", "--out", work + "/exported.keras"])
    codes["resume"] = main(["train", "--resume", "--out", resumed])
    print("RESULT " + json.dumps({"task": "resumed", "fresh": fresh, "codes": codes, "predicted": printed.getvalue()}))
    import keras_transfer as kt
    for task, run in runs.items():
        names = kt.load_model(run)[2]
        exported = kt.export(run, run + "_exported")  # loads the written SavedModel and serves it raw strings
        print("RESULT " + json.dumps({"task": task, "names": names, "predicted": kt.predict(run, texts),
                                      "report": kt.evaluate(run).metrics, "difference": exported.max_abs_difference}))
""")
TEXTS_TO_PREDICT = ["Return the tangent of x.", "Close the socket."]


def write_table(path, task):
    """`text,target` (the number of words) or `text,labels` (the `TAGS` each text mentions, `|`-joined)."""
    rows = [("text", "target" if task == "regression" else "labels")]
    for text in ALL:
        words = text.lower().rstrip(".").split()
        tags = ["short" if len(words) <= 6 else "long"] + [tag for tag in TAGS if tag in words]
        rows.append((text, len(text.split()) if task == "regression" else "|".join(tags)))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)


class Interrupted(Exception):
    pass


def interrupt_a_text_run(root, backbone):
    """What the resume test asserts before the new interpreter, recorded (the run then changes): a classification
    run (`RESUMED`) stopped by an exception raised right after `TrainingState` saved its first fine-tuning epoch
    (where a crash or Ctrl-C would stop it), its exit code, stderr and kill point, then `train --resume` refused
    on an edited text (the text restored after)."""
    source, run = _write(root / "texts.csv"), str(root / "run")
    saved = TrainingState.on_epoch_end

    def stop_after_the_first_fine_tuning_epoch(self, epoch, logs=None):
        saved(self, epoch, logs)
        if len(self.rows) == 2:
            raise Interrupted("injected after the first fine-tuning epoch was saved")

    seen, err = {"run": run}, io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(err):
        patch.setattr(TrainingState, "on_epoch_end", stop_after_the_first_fine_tuning_epoch)
        seen["interrupted"] = main(["train", source, *RESUMED, "--backbone", backbone, "--out", run]), err.getvalue()
    last = os.path.join(run, "last.keras")
    seen["checkpoints"] = [os.path.isfile(os.path.join(run, "best.keras")), os.path.isfile(last)]
    seen["stopped"] = read_checkpoint_state(last) if os.path.isfile(last) else None
    with open(source) as f:
        original = f.read()
    err = io.StringIO()
    try:
        with open(source, "w") as f:
            f.write(original.replace("Return the square root of x.", "Return the square root of y."))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            seen["refused"] = main(["train", "--resume", "--out", run]), err.getvalue()
    finally:
        with open(source, "w") as f:
            f.write(original)
    return seen


def in_a_new_interpreter(runs, texts, resumed, work):
    """`{task: result}`: the interrupted run `resumed` evaluated, predicted, exported and resumed (`"resumed"`,
    with the interpreter's stderr), then both task runs loaded, predicted, exported and evaluated, in ONE new
    interpreter (each new process pays the imports of TensorFlow, Keras and KerasHub)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(runs), json.dumps(texts), resumed, str(work)],
                          env=env, capture_output=True, text=True, timeout=600)
    results = [json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(results) == len(runs) + 1, done.stderr[-3000:]
    results = {result.pop("task"): result for result in results}
    results["resumed"]["stderr"] = done.stderr
    return results


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory):
    """`(runs, results, interrupted)`: a regression run trained through `train_from_folder`, a multi-label run
    through the CLI (its output in the failure message) and the resume test's interrupted run
    (`interrupt_a_text_run`, what it recorded), all on the docstrings' tiny random BERT, then read from one new
    interpreter (`in_a_new_interpreter`)."""
    root = tmp_path_factory.mktemp("task_runs")
    backbone = tiny_bert_folder(str(root / "bert"), ALL)
    runs = {"regression": str(root / "regression"), "multilabel": str(root / "multilabel")}
    keras.utils.set_random_seed(0)
    train_from_folder(write_table(root / "words.csv", "regression"), runs["regression"], task="regression",
                      backbone=backbone, verbose=0, **SETTINGS)
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(["train", write_table(root / "tags.csv", "multilabel"), "--task", "multilabel", "--backbone",
                     backbone, *flags, "--out", runs["multilabel"]])
    assert code == 0, printed.getvalue()[-3000:]
    keras.backend.clear_session(free_memory=False)
    (root / "resumed").mkdir()
    interrupted = interrupt_a_text_run(root / "resumed", backbone)
    return runs, in_a_new_interpreter(runs, TEXTS_TO_PREDICT, interrupted["run"], root / "resumed"), interrupted


def test_text_regression_trains_predicts_evaluates_and_exports(task_runs):
    runs, results, _ = task_runs
    run, result = runs["regression"], results["regression"]
    for name in ("config.json", "splits.json", "recipe.json", "history.json", "report.json", "best.keras"):
        assert os.path.isfile(os.path.join(run, name)), name
    assert os.path.isdir(os.path.join(run, "preprocessor"))
    report = json.load(open(os.path.join(run, "report.json")))
    assert report["task"] == "regression" and report["n"] == 6 and math.isfinite(report["metrics"]["rmse"])
    split = json.load(open(os.path.join(run, "splits.json")))
    assert split["names"] == ["target"] and len(split["train"]) == 12

    assert result["names"] == ["target"]
    assert [r["path"] for r in result["predicted"]] == TEXTS_TO_PREDICT
    assert all(math.isfinite(r["values"]["target"]) for r in result["predicted"])
    assert result["report"]["rmse"] == pytest.approx(report["metrics"]["rmse"], rel=1e-4)
    assert result["difference"] < 1e-4  # the written SavedModel, loaded, vs best.keras


def test_text_multilabel_trains_through_the_cli_with_thresholds(task_runs, tmp_path, capsys):
    runs, results, _ = task_runs
    run, result = runs["multilabel"], results["multilabel"]
    report = json.load(open(os.path.join(run, "report.json")))
    assert report["task"] == "multilabel" and report["names"] == ["long", "return", "short", "socket"]
    assert math.isfinite(report["metrics"]["micro_f1"]) and report["metrics"]["map"] is not None
    thresholds = [v["threshold"] for v in report["metrics"]["per_label"].values()]
    assert len(thresholds) == 4 and all(0 < t < 1 for t in thresholds)

    assert result["names"] == report["names"]
    for row in result["predicted"]:
        assert set(row["probabilities"]) == set(report["names"]) and set(row["labels"]) <= set(report["names"])
    assert result["difference"] < 1e-4  # the written SavedModel, loaded, vs best.keras
    assert main(["predict", run, "Return the sine of x.", "--format", "json"]) == 0
    assert "probabilities" in json.loads(capsys.readouterr().out)[0]
    assert main(["evaluate", run, "--out", str(tmp_path / "eval")]) == 0
    assert "mAP" in capsys.readouterr().out and os.path.isfile(tmp_path / "eval" / "report.json")


def test_an_interrupted_text_run_is_used_and_resumed_to_the_same_total_of_steps_from_a_new_interpreter(task_runs):
    """The interrupted run (`interrupt_a_text_run`) refuses to resume on an edited text, then `evaluate`,
    `predict`, `export` and `train --resume` run in a process that never built a text model (nothing imported the
    module defining `SequencePooling`, nor KerasHub), and the resumed run ends in its phase, with its optimizer, at
    the same total of epochs and steps."""
    _, results, interrupted = task_runs
    run, result, work = interrupted["run"], results["resumed"], os.path.dirname(interrupted["run"])
    code, err = interrupted["interrupted"]
    assert code == 1 and "Continue with --resume" in err, err[-3000:]
    assert interrupted["checkpoints"] == [True, True]  # best.keras, last.keras
    steps = math.ceil(len(read_json(os.path.join(run, "splits.json"))["train"]) / BATCH)
    stopped = interrupted["stopped"]
    assert (stopped["phase"], stopped["phase_epochs_done"], stopped["iterations"]) == ("fine_tune", 1, steps)
    code, refused = interrupted["refused"]
    assert code == 2 and "changed since the run started" in refused and "texts.csv:2" in refused, refused

    assert result["fresh"], "the new interpreter had the text model's classes registered before loading"
    assert result["codes"] == {"evaluate": 0, "predict": 0, "export": 0, "resume": 0}, result["stderr"][-3000:]
    assert "cannot be loaded" not in result["stderr"] and "unknown layer class" not in result["stderr"]

    report = read_json(os.path.join(work, "eval", "report.json"))
    assert report["n"] == 6 and sum(map(sum, report["confusion_matrix"])) == 6
    predicted = json.loads(result["predicted"])
    assert predicted[0]["top"][0]["class"] in ("maths", "network", "time")
    assert os.path.isfile(os.path.join(work, "exported.keras"))
    history = read_json(os.path.join(run, "history.json"))
    assert history["phase"] == ["head", "fine_tune", "fine_tune"] and history["epoch"] == [0, 1, 2]
    state = read_json(os.path.join(run, "state.json"))
    assert state["epochs_done"] == 3 and state["phase"] == "fine_tune" and state["phase_done"]
    assert state["iterations"] == 2 * steps  # the fine-tuning optimizer continued from its saved step count
    assert os.path.isfile(os.path.join(run, "history.png"))


@pytest.mark.backend_free
@pytest.mark.parametrize("settings, message", [
    (dict(task="regression", loss="focal"), r"loss 'focal' does not fit task 'regression'"),
    (dict(task="regression", label_separator=";"), r"label_separator is not supported for modality 'text', task"),
    (dict(task="multilabel", precision="mixed_float16"), r"precision is not supported for modality 'text', task"),
])
def test_text_task_settings_are_checked_before_anything_runs(tmp_path, settings, message):
    source = write_table(tmp_path / "tags.csv", "multilabel")
    with pytest.raises(KerasTransferError, match=message) as info:
        RunConfig.create(data_dir=source, modality="text", **settings).validate()
    assert "\n" not in str(info.value)


@pytest.mark.backend_free
def test_a_task_table_is_read_with_its_targets_and_a_bad_row_is_named(tmp_path):
    table = tmp_path / "tags.jsonl"
    table.write_text('{"text": "a cat", "labels": ["cat"]}\n{"text": " ", "labels": ["dog"]}\n'
                     '{"text": "a cat and a dog", "labels": "cat|dog"}\n')
    found, texts = read_task_texts(str(table), "multilabel")
    assert found.names == ["cat", "dog"] and found.targets.tolist() == [[1, 0], [1, 1]]
    assert found.skipped == [("tags.jsonl:2", "empty or whitespace only")]
    assert texts["tags.jsonl:3"] == "a cat and a dog"
    bad = tmp_path / "scores.csv"
    bad.write_text("text,target\na text,3\nanother,many\n")
    with pytest.raises(KerasTransferError, match=r"scores.csv:3: target 'many' is not a number"):
        read_task_texts(str(bad), "regression")
    with pytest.raises(KerasTransferError, match=r"reads a table .* of text,target. Received: data_dir="):
        read_task_texts(str(tmp_path), "regression")
