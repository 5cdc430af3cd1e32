"""A griffe extension for the Python reference: reads the package's `Example:` sections as Google-style examples.

keras_transfer's docstrings follow STYLE.md: `Args:` then a runnable `Example:` whose `>>>` lines sit at the
docstring's own indentation. Griffe's Google parser knows only `Examples:` (indented) as an examples section and
would render `Example:` as a note whose `>>>` lines are read as Markdown; this rewrites each such section, in the
parsed copy only, so the reference shows the examples as code. The source docstrings are left as they are.
"""

import re

import griffe

_SECTION = re.compile(r"^Example:\n((?:(?:>>>|\.\.\.|\S).*\n?)+)", re.MULTILINE)


def _as_examples(match):
    body = "".join(f"    {line}\n" for line in match.group(1).rstrip("\n").split("\n"))
    return f"Examples:\n{body}"


class ExampleSections(griffe.Extension):
    """Rewrites an unindented `Example:` section of `>>>` lines into an indented `Examples:` section."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and "Example:" in obj.docstring.value:
            obj.docstring.value = _SECTION.sub(_as_examples, obj.docstring.value)
