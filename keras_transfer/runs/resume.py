"""Resuming an interrupted run: checks that the run folder can be continued as asked, then continues it.

`train_from_folder(..., resume=True)` (or `resume_run(out)`, or `keras-transfer train --resume --out RUN`)
continues in the phase and at the epoch where the run stopped, with the optimizer state, learning rate
and EarlyStopping / ReduceLROnPlateau counters of that epoch (see `checkpoints.TrainingState`).
"""

import inspect
import json
import os
import warnings

import keras

from keras_transfer.training.state import LAST_MODEL, RUN_FORMAT, remove_temp_files
from keras_transfer.errors import KerasTransferError

CONFIG = "config.json"
# Recorded for information; they may differ between the interrupted run and its resumption.
NOT_COMPARED = ("keras_version", "keras_transfer_version", "run_format", "keras_backend", "class_weights")


def keras_transfer_version():
    from keras_transfer import __version__

    return __version__


def _read_config(out):
    path = os.path.join(out, CONFIG)
    if not os.path.isfile(path):
        raise KerasTransferError(f"Nothing to resume: {out} holds no run ({CONFIG} missing). "
                                 f"Received: out={out!r}")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise KerasTransferError(f"Cannot read {path}: {error}. Received: out={out!r}") from None


def check_compatible(out, stored):
    """Raises unless the run in `out` was written by this run format on this Keras backend."""
    backend = keras.backend.backend()
    if stored.get("run_format") != RUN_FORMAT:
        raise KerasTransferError(
            f"The run in {out} was written by keras_transfer {stored.get('keras_transfer_version', 'before 0.1.0')} "
            f"(run_format {stored.get('run_format')}); this keras_transfer {keras_transfer_version()} resumes "
            f"run_format {RUN_FORMAT} only. Start a new run. Received: run_format={stored.get('run_format')!r}")
    if stored.get("keras_backend") != backend:
        raise KerasTransferError(
            f"This run was trained under {stored.get('keras_backend')}; resume it with "
            f"KERAS_BACKEND={stored.get('keras_backend')}. Received: keras_backend={backend!r}")
    if stored.get("keras_version") != keras.__version__:
        warnings.warn(f"The run in {out} was trained with Keras {stored.get('keras_version')}; resuming with "
                      f"Keras {keras.__version__}.", stacklevel=3)


def check_resume(out, config):
    """Checks that `out` holds a resumable run whose settings equal `config`; returns the stored config."""
    stored = _read_config(out)
    check_compatible(out, stored)
    differ = [key for key in config if key not in NOT_COMPARED and key in stored and stored[key] != config[key]]
    if differ:
        shown = ", ".join(f"{k}: run {stored[k]!r}, requested {config[k]!r}" for k in differ)
        raise KerasTransferError(
            f"--resume continues the run in {out} with its own settings, and these differ ({shown}). "
            f"Resume without them, or start a new run with another --out. "
            f"Received: {', '.join(f'{k}={config[k]!r}' for k in differ)}")
    if not os.path.isfile(os.path.join(out, LAST_MODEL)):
        raise KerasTransferError(
            f"Nothing to resume in {out}: it has no {LAST_MODEL} (the run stopped before its first epoch ended). "
            f"Start it again with --overwrite. Received: out={out!r}")
    remove_temp_files(out)
    return stored


def check_same_data(out, splits, class_names):
    """Raises unless the data found now splits as it did when the run started."""
    path = os.path.join(out, "splits.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        stored = json.load(f)
    if stored.get("class_names") != list(class_names):
        raise KerasTransferError(
            f"The data's classes changed since the run started ({len(stored.get('class_names', []))} classes "
            f"{stored.get('class_names')}, now {len(class_names)}: {list(class_names)}); the model's head cannot "
            f"be resumed on them. Received: class_names={list(class_names)!r}")
    for split in ("train", "val", "test"):
        if stored.get(split, []) != splits.get(split, []):
            raise KerasTransferError(
                f"The {split} split changed since the run started ({len(stored.get(split, []))} images, now "
                f"{len(splits.get(split, []))}): files were added, removed or became unreadable. Restore the data "
                f"or start a new run. Received: {split}={len(splits.get(split, []))} images")


def resume_run(out, **requested):
    """Continues the interrupted run in `out` with the settings stored in its `config.json`.

    Args:
        out: the run folder.
        **requested: `train_from_folder` arguments; each must equal the stored one (`verbose` may differ).

    Returns:
        What `train_from_folder` returns.

    Example:
    >>> train_from_folder("photos", "runs/a", backbone="vgg16", weights=None, input_size=32)  # killed
    >>> model, result = resume_run("runs/a")
    """
    from keras_transfer.runs.train import train_from_folder

    stored = _read_config(out)
    check_compatible(out, stored)
    params = inspect.signature(train_from_folder).parameters
    kwargs = {k: v for k, v in stored.items() if k in params and k not in ("data_dir", "out")}
    data_dir = requested.pop("data_dir", None) or stored["data_dir"]
    verbose = requested.pop("verbose", "auto")
    for key, value in requested.items():
        if key not in params:
            raise KerasTransferError(f"Unknown train_from_folder argument '{key}'. Received: {key}={value!r}")
        kwargs[key] = value
    return train_from_folder(data_dir, out, resume=True, verbose=verbose, **kwargs)
