"""Numeric precision and XLA compilation options, resolved in one place.

`precision` picks the Keras dtype policy a classifier is built under (`"float32"`, `"mixed_bfloat16"`,
`"mixed_float16"`); the head stays float32 so the loss is computed in float32. The global policy is
restored once the model is built. `jit_compile` is `"auto"`, `True` or `False`; `"auto"` is handed to
Keras, which turns XLA off on a CPU-only TensorFlow (where it is slower) and always compiles on JAX.
"""

import contextlib

import keras

from keras_transfer.errors import KerasTransferError, unknown_name

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = ("auto", True, False)


def check_precision(precision):
    """Returns `precision` (`None` means `"float32"`) or raises for an unknown name."""
    precision = "float32" if precision is None else precision
    if precision not in PRECISIONS:
        raise unknown_name("precision", precision, PRECISIONS)
    return precision


@contextlib.contextmanager
def dtype_policy(precision):
    """Sets the global Keras dtype policy for the `with` block, then restores the previous one.

    Example:
    >>> with dtype_policy("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32')
    """
    precision = check_precision(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def parse_jit_compile(value):
    """`"auto"`, `True` or `False` from a CLI string or a Python value.

    Example:
    >>> parse_jit_compile("false"), parse_jit_compile("auto")
    (False, 'auto')
    """
    if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
        return {"auto": "auto", "true": True, "false": False}[value.lower()]
    if value in JIT_COMPILE and (isinstance(value, bool) or value == "auto"):
        return value
    raise KerasTransferError(f"jit_compile must be 'auto', True or False. Received: jit_compile={value!r}")
