"""The run folder on disk: creating it, reading its config back, and checking that it can be resumed as asked."""

import logging
import os
import warnings

import keras

from keras_transfer import io
from keras_transfer.errors import KerasTransferError
from keras_transfer.data.fingerprint import changed_files
from keras_transfer.layout import (CONFIG, DATA_FINGERPRINT, HISTORY_JSON, HISTORY_PLOT, LAST_MODEL, RUN_FORMAT,
                                   SPLITS_FILE, TRAINING_FILES)
from keras_transfer.runs.config import RunConfig
from keras_transfer.serving import plots
from keras_transfer.version import __version__

log = logging.getLogger(__name__)


def check_run_folder(out, overwrite=False):
    """Refuses a folder that already holds a run unless `overwrite`, and an `out` that is a file."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise KerasTransferError(f"--out {out} is a file; a run is written into a folder (new, or holding a run "
                                 f"with --overwrite / --resume). Received: out={os.fspath(out)!r}")
    if os.path.exists(os.path.join(out, CONFIG)) and not overwrite:
        raise KerasTransferError(
            f"Run folder {out} already holds a run ({CONFIG}). Choose another --out or pass --overwrite. "
            f"Received: out={out!r}"
        )


def prepare_run_folder(out, overwrite=False):
    """Creates `out`; refuses a folder that already holds a run unless `overwrite`, which removes its files."""
    check_run_folder(out, overwrite)
    if overwrite:
        for name in TRAINING_FILES:
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    os.makedirs(out, exist_ok=True)
    io.remove_temp_files(out)
    return out


def read_config(out):
    """`(RunConfig, environment)` of the run in `out`, from its `config.json`."""
    path = os.path.join(out, CONFIG)
    if not os.path.isfile(path):
        raise KerasTransferError(f"Nothing to resume: {out} holds no run ({CONFIG} missing). "
                                 f"Received: out={out!r}")
    try:
        stored = io.read_json(path)
        return RunConfig.from_json(stored)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise KerasTransferError(f"Cannot read {path}: {error}. Received: out={out!r}") from None


def resize_rule(source):
    """The `antialias` a run's images were resized with (its `config.json`); False for a model file or a
    folder without one, as the pipeline's default. `predict` and `evaluate` resize new images the same way."""
    source = os.fspath(source)
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, CONFIG)):
        return read_config(source)[0].antialias
    return False


def run_modality(source):
    """What a run's model takes, `"image"` or `"text"` (its `config.json`); `"image"` for a model file or a
    folder without one. `evaluate`, `predict` and `export` dispatch on it."""
    source = os.fspath(source)
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, CONFIG)):
        return read_config(source)[0].modality
    return "image"


def check_compatible(out, env):
    """Raises unless the run in `out` was written by this run format on this Keras backend."""
    backend = keras.backend.backend()
    if env.get("run_format") != RUN_FORMAT:
        raise KerasTransferError(
            f"The run in {out} was written by keras_transfer {env.get('keras_transfer_version', 'before 0.1.0')} "
            f"(run_format {env.get('run_format')}); this keras_transfer {__version__} resumes "
            f"run_format {RUN_FORMAT} only. Start a new run. Received: run_format={env.get('run_format')!r}")
    if env.get("keras_backend") != backend:
        raise KerasTransferError(
            f"This run was trained under {env.get('keras_backend')}; resume it with "
            f"KERAS_BACKEND={env.get('keras_backend')}. Received: keras_backend={backend!r}")
    if env.get("keras_version") != keras.__version__:
        warnings.warn(f"The run in {out} was trained with Keras {env.get('keras_version')}; resuming with "
                      f"Keras {keras.__version__}.", stacklevel=3)


def check_resume(out, config):
    """Checks that `out` holds a resumable run whose settings equal `config` (validated); returns the stored
    config."""
    stored, env = read_config(out)
    check_compatible(out, env)
    differ = stored.differences(config)
    if differ:
        shown = ", ".join(f"{k}: run {run!r}, requested {asked!r}" for k, (run, asked) in differ.items())
        raise KerasTransferError(
            f"--resume continues the run in {out} with its own settings, and these differ ({shown}). "
            f"Resume without them, or start a new run with another --out. "
            f"Received: {', '.join(f'{k}={asked!r}' for k, (_, asked) in differ.items())}")
    if not os.path.isfile(os.path.join(out, LAST_MODEL)):
        raise KerasTransferError(
            f"Nothing to resume in {out}: it has no {LAST_MODEL} (the run stopped before its first epoch ended). "
            f"Start it again with --overwrite. Received: out={out!r}")
    io.remove_temp_files(out)
    return stored


def check_same_data(out, splits, class_names, prints=None):
    """Raises unless the data found now splits as it did when the run started (a task run: with the same
    targets or labels) and, where the run stored a fingerprint (`prints`, from `data.fingerprint`), its files
    hold the same content."""
    path = os.path.join(out, SPLITS_FILE)
    if not os.path.isfile(path):
        return
    stored = io.read_json(path)
    names = stored.get("class_names", stored.get("names"))  # a regression/multi-label run: targets or labels
    if names != list(class_names):
        raise KerasTransferError(
            f"The data's classes changed since the run started ({len(names or [])} classes "
            f"{names}, now {len(class_names)}: {list(class_names)}); the model's head cannot "
            f"be resumed on them. Received: class_names={list(class_names)!r}")
    for split in ("train", "val", "test"):
        if stored.get(split, []) != splits.get(split, []):
            raise KerasTransferError(
                f"The {split} split changed since the run started ({len(stored.get(split, []))} images, now "
                f"{len(splits.get(split, []))}): files were added, removed or became unreadable. Restore the data "
                f"or start a new run. Received: {split}={len(splits.get(split, []))} images")
    stored_path = os.path.join(out, DATA_FINGERPRINT)
    if prints is not None and os.path.isfile(stored_path):
        changed = changed_files(io.read_json(stored_path), prints)
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            raise KerasTransferError(
                f"The content of {len(changed)} data file(s) changed since the run started, under the same names: "
                f"{shown}. Restore the data or start a new run. Received: {len(changed)} changed file(s)")


def write_history_plot(out):
    """Writes `history.png` into the run folder where matplotlib is installed; else says how to get it."""
    if not plots.matplotlib_available():
        log.info("No history.png: plots need matplotlib (%s).", plots.INSTALL_HINT)
        return None
    path = os.path.join(out, HISTORY_PLOT)
    plots.plot_history(os.path.join(out, HISTORY_JSON), path)
    return path
