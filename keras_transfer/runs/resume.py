"""Resuming an interrupted run: the saved config, with the overrides given (which must equal it).

`resume_run(out)` (or `train_from_folder(..., resume=True)`, or `keras-transfer train --resume --out RUN`)
continues in the phase and at the epoch where the run stopped, with the optimizer state, learning rate
and EarlyStopping / ReduceLROnPlateau counters of that epoch (see `training.state.TrainingState`).
"""

from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.folder import check_compatible, read_config
from keras_transfer.runs.train import run_training


def resume_run(out, *, verbose="auto", **overrides):
    """Continues the interrupted run in `out` with the settings stored in its `config.json`.

    Args:
        out: the run folder.
        verbose: as in `model.fit`.
        **overrides: `RunConfig` settings; each must equal the stored one (the run continues with its own).
            `data_dir` may be left out (the stored one is used).

    Returns:
        What `train_from_folder` returns.

    Example:
    >>> train_from_folder("photos", "runs/a", backbone="vgg16", weights=None, input_size=32)  # killed
    >>> model, result = resume_run("runs/a")
    """
    RunConfig.check_names(overrides)
    stored, env = read_config(out)
    check_compatible(out, env)
    overrides = {k: v for k, v in overrides.items() if not (k == "data_dir" and v is None)}
    return run_training(stored.replace(**overrides), out, verbose=verbose, resume=True)
