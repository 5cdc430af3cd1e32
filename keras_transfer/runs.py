"""Drives a training run from a data folder and writes the run folder.

A run folder holds `config.json` (what was asked), `history.csv` (per epoch, written live),
`history.json` (per epoch, with the phase of each epoch), `best.keras` (the best model over all
phases) and `class_names.json`.
"""

import json
import os
import tempfile

import keras

from keras_transfer.backbones import get_backbone_spec
from keras_transfer.data import load_image_folder
from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.model import build_classifier
from keras_transfer.presets import get_preset
from keras_transfer.recipes import UNFREEZE, fine_tune, run_phases

CONFIG, HISTORY_CSV, HISTORY, BEST_MODEL, CLASS_NAMES = (
    "config.json", "history.csv", "history.json", "best.keras", "class_names.json")
STRATEGIES = ("head_only",) + UNFREEZE


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
        for name in (HISTORY_CSV, BEST_MODEL):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    os.makedirs(out, exist_ok=True)
    return out


def train_from_folder(data_dir, out, *, backbone="mobilenetv2", weights="imagenet", input_size=None,
                      strategy="top_blocks", n=2, layer=None, epochs=5, fine_tune_epochs=None, batch_size=32,
                      validation_split=0.2, augmentation="light", dropout=0.2, learning_rate=None,
                      fine_tune_learning_rate=None, seed=1337, overwrite=False, verbose="auto"):
    """Trains a classifier on an image folder and writes the run folder `out`.

    `strategy="head_only"` trains only the head; the others run the two-phase recipe with that
    unfreezing (`"top_blocks"`, `"from_layer"`, `"full"`, `"gradual"`).

    Returns:
        `(model, FineTuneResult)`: the trained model (best weights of its last phase restored;
        `out/best.keras` holds the best over all phases) and the phases' histories.
    """
    if strategy not in STRATEGIES:
        raise unknown_name("strategy", strategy, STRATEGIES)
    spec = get_backbone_spec(backbone)
    input_size = input_size or spec.default_size
    config = dict(data_dir=os.path.abspath(data_dir), backbone=spec.name, weights=weights, input_size=input_size,
                  strategy=strategy, n=n, layer=layer, epochs=epochs, fine_tune_epochs=fine_tune_epochs,
                  batch_size=batch_size, validation_split=validation_split, augmentation=augmentation,
                  dropout=dropout, learning_rate=learning_rate, fine_tune_learning_rate=fine_tune_learning_rate,
                  seed=seed, keras_backend=keras.backend.backend(), keras_version=keras.__version__)
    check_run_folder(out, overwrite)
    data = load_image_folder(data_dir, image_size=input_size, batch_size=batch_size,
                             validation_split=validation_split, seed=seed)
    keras.utils.set_random_seed(seed)
    model = build_classifier(spec, data.num_classes, weights=weights, input_size=input_size,
                             augmentation=augmentation, dropout=dropout, class_names=data.class_names, seed=seed)
    prepare_run_folder(out, overwrite)  # only once every input checked out: a rejected run leaves nothing
    write_json(os.path.join(out, CONFIG), config)
    write_json(os.path.join(out, CLASS_NAMES), data.class_names)
    paths = dict(checkpoint_path=os.path.join(out, BEST_MODEL), csv_path=os.path.join(out, HISTORY_CSV))
    if strategy == "head_only":
        head = get_preset("feature_extraction", epochs=epochs, learning_rate=learning_rate)
        result = run_phases(model, data.train, data.val, [("head", head)], verbose=verbose, **paths)
    else:
        result = fine_tune(model, data.train, data.val, head_epochs=epochs, fine_tune_epochs=fine_tune_epochs or epochs,
                           unfreeze=strategy, n=n, layer=layer, head_learning_rate=learning_rate,
                           fine_tune_learning_rate=fine_tune_learning_rate, verbose=verbose, **paths)
    write_json(os.path.join(out, HISTORY), result.history)
    return model, result
