"""The `keras-transfer` command's entry point: loads TensorFlow quietly, then runs `keras_transfer.cli.main`.

While TensorFlow loads, its C++ runtime writes start-up notices (the oneDNN notice, the CUDA stub's "Could not
find cuda drivers") straight to file descriptor 2, whatever `TF_CPP_MIN_LOG_LEVEL` says, and before any
keras_transfer code could run: importing the package loads Keras, which loads TensorFlow. So this module sits
outside the package: it points descriptor 2 at /dev/null while TensorFlow and Keras load, then restores it,
so a user's first screen is the tool's own output. `--debug` leaves everything as it is.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--debug" not in argv:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _stderr_silenced():
            import tensorflow  # noqa: F401  (loaded here, quietly; the CLI needs it for tf.data and export)
            import keras  # noqa: F401
    from keras_transfer.cli import main as cli_main  # after TensorFlow is loaded

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
