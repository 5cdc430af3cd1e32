"""The text recipes: the image recipes (`recipes.plan_recipe`) with the rates and optimizer encoders are
fine-tuned with, run on token-id data sets.

What changes for a pretrained encoder: fine-tuning runs AdamW (weight decay 0.004) at a peak of 3e-5 (BERT's
2e-5..5e-5) under warmup and cosine decay, instead of Adam at 1e-4; the head phase (the linear probe on the
frozen, pooled encoder outputs) is the same; one rate for every unfrozen encoder block (no per-block decay). From random initialisation (`pretrained=False`): the `scratch`
recipe, every layer, AdamW at 1e-4 (BERT's own pre-training rate) with warmup and cosine decay. The image
recipes' feature-collapse check is not run: it guards against BatchNorm statistics collapsing in a random
network, and encoders normalise with LayerNorm (no statistics).
"""

import dataclasses
import logging
import re

from keras_transfer.models.text_registry import PRETRAINED_ATTRIBUTE
from keras_transfer.training.phases import run_phases
from keras_transfer.training.recipes import RecipeOptions, data_size, describe, plan_recipe

log = logging.getLogger(__name__)
TEXT_FINE_TUNE_RATE = 3e-5
TEXT_SCRATCH_RATE = 1e-4
TEXT_OPTIMIZER = "adamw"


def plan_text_recipe(recipe, size, options=None, *, pretrained=True):
    """`(recipe name, [(phase, Preset)], why)`: `plan_recipe` with the encoder rates and AdamW."""
    options = options or RecipeOptions()
    if options.fine_tune_learning_rate is None:
        rate = TEXT_FINE_TUNE_RATE if pretrained else TEXT_SCRATCH_RATE
        options = dataclasses.replace(options, fine_tune_learning_rate=rate)
    name, phases, why = plan_recipe(recipe, size, options, pretrained=pretrained)
    # one rate for the whole encoder: per-block rates go by inner layer names, and every transformer layer's
    # sublayers share theirs (`self_attention_layer`, ...), so `block_multipliers` cannot tell them apart
    phases = [(phase, dataclasses.replace(preset, views=0) if preset.solver == "linear"  # views shift images
               else dataclasses.replace(preset, optimizer=TEXT_OPTIMIZER, layer_decay=None))
              for phase, preset in phases]
    why = [line.replace(", BatchNorm included", "") for line in why
           if not line.startswith("phase '") and "BatchNorm" not in line.split(":")[0]]
    why = why[:1] + [describe(phase, preset) for phase, preset in phases] + [
        "text encoder: no per-block rates, no feature-collapse check (LayerNorm, no BatchNorm statistics)"]
    return name, phases, [_texts(line) for line in why]


def _texts(line):
    """A plan line about texts: "48 training images" -> "48 training texts" (the counts the image plan names)."""
    return re.sub(r"(\d[\d,]*) (training )?images\b", r"\1 \2texts", line)


def resolve_pretrained(model, pretrained):
    """`pretrained` as given, else what `build_text_classifier` recorded on `model` (True for a model it did not
    build). Returns `(pretrained, why)`: `why` says where a `False` came from, or is `None`."""
    if pretrained is not None:
        return bool(pretrained), None
    recorded = getattr(model, PRETRAINED_ATTRIBUTE, None)
    if recorded is False:
        return False, ("the model was built without pretrained weights (weights=None): no linear probe on its "
                       "random features; to train from scratch on purpose pass pretrained=False (CLI: --weights none)")
    return True, None


def run_text_recipe(model, train, val=None, *, recipe="auto", pretrained=None, options=None, num_texts=None,
                    **kwargs):
    """Trains a model made by `build_text_classifier` with a named recipe (see the module docstring).

    Args:
        model: a text classifier.
        train, val: `tf.data.Dataset`s of `(preprocessor outputs, labels)` batches (`data.texts.load_texts`).
        recipe: `"auto"`, `"two_phase"`, `"lp_ft"`, `"gradual"` or `"scratch"`.
        pretrained: whether the encoder holds pretrained weights (`False`: `"auto"` runs `scratch`); `None`
            (the default): as the model was built (`build_text_classifier(weights=None)`: `False`), else `True`.
        options: a `RecipeOptions`.
        num_texts: the training texts (a data set of unknown size cannot tell).
        **kwargs: `checkpoint_path`, `csv_path`, `callbacks`, `class_weight`, `verbose`, ... as in `run_phases`.

    Returns:
        A `FineTuneResult` with `recipe` and `plan`.

    Example:
    >>> data = load_texts("reviews.csv", preprocessor)
    >>> run_text_recipe(model, data.train, data.val, num_texts=len(data.splits.labels("train"))).plan
    """
    size = data_size(model, train, num_texts)
    pretrained, reason = resolve_pretrained(model, pretrained)
    name, phases, why = plan_text_recipe(recipe, size, options, pretrained=pretrained)
    why = why[:1] + [reason] + why[1:] if reason else why
    for line in why:
        log.info("%s", line)
    result = run_phases(model, train, val, phases, **kwargs)
    result.recipe, result.plan = name, why
    return result
