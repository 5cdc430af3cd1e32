"""`keras-transfer train`'s flags, generated from `RunConfig`'s fields: a flag the user gave is a key that is present,
and the command line's defaults are the dataclass's."""

import argparse

from keras_transfer.models.precision import parse_jit_compile
from keras_transfer.runs.config import RunConfig


def flag_name(field):
    return field.metadata["cli"] or "--" + field.name.replace("_", "-")


def add_flags(parser):
    """Adds one flag per `RunConfig` field to an argparse parser; a flag not given leaves no attribute."""
    for field in RunConfig.fields():
        meta, name = field.metadata, flag_name(field)
        shown = "" if "default" in meta["help"] or field.default in (None, False) else f" (default: {field.default})"
        kwargs = dict(help=meta["help"] + shown, default=argparse.SUPPRESS)
        if name == "positional":
            parser.add_argument(field.name, nargs="?", help=meta["help"], default=argparse.SUPPRESS)
            continue
        if isinstance(field.default, bool):
            parser.add_argument(name, dest=field.name, action="store_true", **kwargs)
            continue
        parse = meta["type"] or type(field.default)
        choices = meta["cli_choices"] or meta["choices"]
        if choices is not None:
            kwargs["choices"] = [c for c in choices if c is not None]
            parse = str
        parser.add_argument(name, dest=field.name, type=parse, **kwargs)


def given_settings(args):
    """The settings given on the command line, by field name (flags not given are absent)."""
    names = {f.name for f in RunConfig.fields()}
    given = {k: v for k, v in vars(args).items() if k in names}
    if "jit_compile" in given:
        given["jit_compile"] = parse_jit_compile(given["jit_compile"])
    return given
