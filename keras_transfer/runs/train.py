"""Drives a training run from a data folder and writes the run folder.

A run folder holds `config.json` (what was asked), `history.csv` (per epoch, written live),
`history.json` (per epoch, with the phase of each epoch), `history.png` (its plot, where matplotlib is
installed), `best.keras` (the best model over all phases), `class_names.json`, `splits.json` (which
file went to which split), `data_summary.json` (images per class per split, image sizes, skipped files)
and, with a test split, `report.json` / `report.txt` / `confusion_matrix.png` (`best.keras` evaluated on it).
"""

import json
import os
import tempfile

import keras

from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.data.sources import load_image_folder
from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.serving.evaluation import CONFUSION_PNG, REPORT_JSON, REPORT_TXT, evaluate
from keras_transfer.training.state import LAST_MODEL, RUN_FORMAT, STATE, TrainingState, history_columns
from keras_transfer.models.classifier import build_classifier
from keras_transfer.models.precision import check_precision, parse_jit_compile
from keras_transfer.training.presets import get_preset
from keras_transfer.runs.resume import check_resume, check_same_data, keras_transfer_version
from keras_transfer.training.recipes import UNFREEZE, fine_tune, run_phases
from keras_transfer.data.splits import class_weights
from keras_transfer.runs.config import check_train_args

CONFIG, HISTORY_CSV, HISTORY, BEST_MODEL, CLASS_NAMES = (
    "config.json", "history.csv", "history.json", "best.keras", "class_names.json")
STRATEGIES = ("head_only",) + UNFREEZE
SPLITS, DATA_SUMMARY, HISTORY_PLOT = "splits.json", "data_summary.json", "history.png"
REPORT_FILES = (REPORT_JSON, REPORT_TXT, CONFUSION_PNG)  # the test split's evaluation


def write_json(path, data):
    """Writes JSON through a temporary file renamed into place, so a crash never leaves half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_json(path):
    with open(path) as f:
        return json.load(f)


def check_run_folder(out, overwrite=False):
    """Refuses a folder that already holds a run unless `overwrite`."""
    if os.path.exists(os.path.join(out, CONFIG)) and not overwrite:
        raise KerasTransferError(
            f"Run folder {out} already holds a run ({CONFIG}). Choose another --out or pass --overwrite. "
            f"Received: out={out!r}"
        )


def prepare_run_folder(out, overwrite=False):
    """Creates `out`; refuses a folder that already holds a run unless `overwrite`."""
    check_run_folder(out, overwrite)
    if overwrite:
        for name in (HISTORY_CSV, BEST_MODEL, LAST_MODEL, STATE, HISTORY_PLOT) + REPORT_FILES:
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    os.makedirs(out, exist_ok=True)
    return out


def train_from_folder(data_dir, out, *, backbone="mobilenetv2", weights="imagenet", input_size=None,
                      strategy="top_blocks", n=2, layer=None, epochs=5, fine_tune_epochs=None, batch_size=32,
                      validation_split=0.2, augmentation="light", dropout=0.2, learning_rate=None,
                      fine_tune_learning_rate=None, seed=1337, overwrite=False, verbose="auto",
                      test_split=0.0, strict=False, class_weight=None, cache_features=False, cache_dir=None,
                      precision="float32", jit_compile="auto", resume=False):
    """Trains a classifier on an image folder and writes the run folder `out`.

    Every argument is checked before any work starts (`validation.check_train_args`). After every epoch
    `last.keras` (with the optimizer and training state) and `state.json` are written atomically;
    `resume=True` continues an interrupted run in `out` in its phase, at its epoch, with its optimizer
    state (the arguments must equal the run's; `resume.resume_run(out)` takes them from `config.json`).
    A NaN or infinite loss stops the run with a `NonFiniteLossError`; no NaN weights are saved.

    `strategy="head_only"` trains only the head; the others run the two-phase recipe with that
    unfreezing (`"top_blocks"`, `"from_layer"`, `"full"`, `"gradual"`).

    `data_dir` is a folder of class subfolders, a folder with `train/` `val/` `test/` subfolders (used as
    it is) or a CSV/JSON manifest of `path,label` rows (see `data.find_images`). Unreadable files are
    skipped and listed in the printed data summary and `data_summary.json` (`strict=True`: the run stops
    before writing anything); `splits.json` records which file went to which split. `test_split` holds
    out a share of each class for testing; `class_weight="balanced"` weighs classes by n / (k * count).

    Speed: `cache_features=True` trains the head phase on backbone features computed once (needs
    `augmentation="none"`; in memory, or streamed to `cache_dir`); `precision` is `"float32"`,
    `"mixed_bfloat16"` or `"mixed_float16"`; `jit_compile` is `"auto"`, `True` or `False`.

    Returns:
        `(model, FineTuneResult)`: the trained model (best weights of its last phase restored;
        `out/best.keras` holds the best over all phases) and the phases' histories.
    """
    if strategy not in STRATEGIES:
        raise unknown_name("strategy", strategy, STRATEGIES)
    if class_weight not in (None, "balanced"):
        raise unknown_name("class_weight", class_weight, ("balanced",))
    spec = get_backbone_spec(backbone)
    input_size = input_size or spec.default_size
    check_train_args(data_dir, spec=spec, input_size=input_size, strategy=strategy, n=n, layer=layer, epochs=epochs,
                     fine_tune_epochs=fine_tune_epochs, batch_size=batch_size, validation_split=validation_split,
                     test_split=test_split, augmentation=augmentation, dropout=dropout, learning_rate=learning_rate,
                     fine_tune_learning_rate=fine_tune_learning_rate, seed=seed, cache_features=cache_features,
                     weights=None if resume else weights)  # resumed: the weights come from last.keras
    config = dict(data_dir=os.path.abspath(data_dir), backbone=spec.name, weights=weights, input_size=input_size,
                  strategy=strategy, n=n, layer=layer, epochs=epochs, fine_tune_epochs=fine_tune_epochs,
                  batch_size=batch_size, validation_split=validation_split, augmentation=augmentation,
                  dropout=dropout, learning_rate=learning_rate, fine_tune_learning_rate=fine_tune_learning_rate,
                  seed=seed, keras_backend=keras.backend.backend(), keras_version=keras.__version__)
    config.update(test_split=test_split, strict=strict, class_weight=class_weight)
    jit_compile = parse_jit_compile(jit_compile)
    config.update(cache_features=cache_features, cache_dir=cache_dir and os.path.abspath(cache_dir),
                  precision=check_precision(precision), jit_compile=jit_compile)
    config.update(keras_transfer_version=keras_transfer_version(), run_format=RUN_FORMAT)
    if resume:
        check_resume(out, config)
    else:
        check_run_folder(out, overwrite)
    keras.utils.set_random_seed(seed)  # before the datasets exist: TensorFlow's shuffle seeds mix in the global one
    data = load_image_folder(data_dir, image_size=input_size, batch_size=batch_size,
                             validation_split=validation_split, seed=seed, test_split=test_split, strict=strict)
    print(data.summary)
    if resume:
        check_same_data(out, data.splits.as_dict(), data.class_names)
    weights_by_class = class_weights(data.splits.labels("train"), data.num_classes) if class_weight else None
    config.update(class_weights=weights_by_class and {str(k): v for k, v in weights_by_class.items()})
    keras.utils.set_random_seed(seed)
    model = build_classifier(spec, data.num_classes, weights=None if resume else weights, input_size=input_size,
                             augmentation=augmentation, dropout=dropout, class_names=data.class_names, seed=seed,
                             precision=precision)
    state = TrainingState(out, resume=resume)  # resumed: reads last.keras; weights=None above, they come from it
    if state.finished:
        raise KerasTransferError(f"The run in {out} already finished all its epochs; nothing to resume. "
                                 f"Received: resume=True")
    if not resume:
        prepare_run_folder(out, overwrite)  # only once every input checked out: a rejected run leaves nothing
        write_json(os.path.join(out, CONFIG), config)
        write_json(os.path.join(out, CLASS_NAMES), data.class_names)
        write_json(os.path.join(out, SPLITS), data.splits.as_dict())
        write_json(os.path.join(out, DATA_SUMMARY), data.summary.as_dict())
    # history.csv and history.json are written by `state` after every epoch, atomically (no CSVLogger rows
    # to duplicate on resume).
    paths = dict(checkpoint_path=os.path.join(out, BEST_MODEL), cache_features=cache_features, cache_dir=cache_dir,
                 jit_compile=jit_compile, state=state)
    if strategy == "head_only":
        head = get_preset("feature_extraction", epochs=epochs, learning_rate=learning_rate)
        result = run_phases(model, data.train, data.val, [("head", head)], verbose=verbose,
                            class_weight=weights_by_class, **paths)
    else:
        result = fine_tune(model, data.train, data.val, head_epochs=epochs, fine_tune_epochs=fine_tune_epochs or epochs,
                           unfreeze=strategy, n=n, layer=layer, head_learning_rate=learning_rate,
                           fine_tune_learning_rate=fine_tune_learning_rate, verbose=verbose,
                           class_weight=weights_by_class, **paths)
    write_json(os.path.join(out, HISTORY), history_columns(state.rows))  # all phases, resumed ones included
    write_history_plot(out)
    if data.test is not None:
        evaluate_test_split(out, data, batch_size=batch_size, fallback=model)
    return model, result


def evaluate_test_split(out, data, *, batch_size, fallback):
    """Evaluates `best.keras` (else `fallback`) on the held-out test split into the run folder: `report.json`,
    `report.txt` and, with matplotlib, `confusion_matrix.png`."""
    best_path = os.path.join(out, BEST_MODEL)
    best = keras.saving.load_model(best_path) if os.path.isfile(best_path) else fallback
    report = evaluate(best, (data.splits.paths("test"), data.splits.labels("test")), class_names=data.class_names,
                      batch_size=batch_size, out=out)
    print(f"Test split ({report.n} images): accuracy {report.accuracy:.4f}, top-{report.top_k} accuracy "
          f"{report.top_k_accuracy:.4f}; full report in {os.path.join(out, 'report.txt')}")
    return report


def write_history_plot(out):
    """Writes `history.png` into the run folder where matplotlib is installed; else says how to get it."""
    from keras_transfer.serving import plots


    if not plots.matplotlib_available():
        print(f"No history.png: plots need matplotlib ({plots.INSTALL_HINT}).")
        return None
    path = os.path.join(out, HISTORY_PLOT)
    plots.plot_history(os.path.join(out, HISTORY), path)
    return path
