"""Recipes by name: each a short function that plans a run's phases (`(name, Preset)` pairs) from the data size.

- `two_phase`: the Keras guide's recipe: the head at 1e-3, then the top blocks at 1e-5 (constant rates,
  ReduceLROnPlateau), now with a step budget.
- `lp_ft`: the head fitted to convergence on the frozen features (a linear probe, weight decay chosen on the
  validation split), then fine-tuning of the top blocks from that head with per-block rates under warmup and
  cosine decay; the fine-tuned weights are kept only if they beat the probe's validation accuracy, the loss
  breaking ties (Kumar et al., ICLR 2022).
- `gradual`: the converged head, then one more top block per stage, the optimizer (its moments and step count)
  carried across stages under one schedule (ULMFiT's gradual unfreezing).
- `scratch`: every layer, BatchNorm included, from random weights, under warmup and cosine decay; a classifier keeps
  its epoch of best validation accuracy, the loss breaking ties.
- `auto` (the default) picks one by the data and says which and why: without pretrained weights `scratch`;
  under 3 training images a class (20 for texts) the converged head alone; up to 20,000 images `lp_ft` (the
  fine-tuning kept only when it beats the probe on validation: measured at 3-10 a class on real ImageNet features,
  docs/results-mobilenetv2.md); beyond, `two_phase`.

Every phase has a step budget (`budget`): the batch is capped for tiny data sets, the epochs follow from a
minimum number of optimizer steps, and EarlyStopping cannot end a phase before its warmup and that minimum.

A text encoder's plan (`plan_text_recipe`) is the same recipe with the rates and optimizer encoders are fine-tuned
with: AdamW (weight decay 0.004) at a peak of 3e-5 (BERT's 2e-5..5e-5) under warmup and cosine decay, instead of
Adam at 1e-4; the head phase (the linear probe on the frozen, pooled encoder outputs) is the same; one rate for
every unfrozen encoder block (no per-block decay). From random initialisation (`pretrained=False`): `scratch`,
every layer, AdamW at 1e-4 (BERT's own pre-training rate) with warmup and cosine decay. The feature-collapse check
is not run: it guards against BatchNorm statistics collapsing in a random network, and encoders normalise with
LayerNorm (no statistics).
"""

import dataclasses
import logging
import re
import warnings

import numpy as np

from keras_transfer.errors import KerasTransferError, unknown_name
from keras_transfer.models.classifier import head_layers
from keras_transfer.models.heads import is_text_model
from keras_transfer.models.text_registry import PRETRAINED_ATTRIBUTE
from keras_transfer.training.batchnorm import sample_batches
from keras_transfer.training.diagnostics import FeatureCollapseCheck
from keras_transfer.training.regularization import attach_l2sp, regularize_head
from keras_transfer.training.budget import (FEW_SHOT, FEW_SHOT_WHY, MIN_FINE_TUNE_STEPS, MIN_HEAD_STEPS,
                                            MIN_SCRATCH_STEPS, LARGE_DATA, PROBE_VIEWS, PROBE_VIEWS_UP_TO,
                                            PROBE_VIEWS_WHY, TEXT_FEW_SHOT, DataSize, budget)
from keras_transfer.training.phases import batch_of, images_in, run_phases
from keras_transfer.training.presets import Preset, get_preset

RECIPES = ("auto", "two_phase", "lp_ft", "gradual", "scratch")
TEXT_FINE_TUNE_RATE = 3e-5
TEXT_SCRATCH_RATE = 1e-4
TEXT_OPTIMIZER = "adamw"
UNFREEZE = ("top_blocks", "from_layer", "full", "gradual")
STRATEGIES = ("head_only",) + UNFREEZE
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RecipeOptions:
    """What a user may set; `None` leaves it to the recipe.

    Args:
        strategy: `"head_only"` (the head phase alone), or how the backbone is unfrozen after it:
            `"top_blocks"` (the top `n` blocks), `"from_layer"` (from `layer` on), `"full"`, `"gradual"`.
        head_epochs: exact epochs of the head phase (default: from the step budget).
        fine_tune_epochs: exact epochs of the fine-tuning phase (default: from the step budget).
        head_learning_rate: the head phase's (peak) rate.
        fine_tune_learning_rate: the fine-tuning phase's (peak) rate.
        batch_size: the batch size (default: 32, at most a quarter of the training images).
        layer_decay: per-block rate factor of `lp_ft` / `gradual` (the top block trains at rate x decay).
        label_smoothing: of the cross-entropy loss, in every gradient phase.
        l2sp: L2-SP strength alpha: the backbone is pulled toward its pretrained weights (`None`: off).
        head_l1: L1 kernel penalty of the head in the gradient phases (saved with the model).
        head_l2: L2 kernel penalty of the head, likewise.
        lr_scale: every phase's learning rate is multiplied by it (data-parallel runs: the linear scaling
            rule, `training.distribution`).
    """

    strategy: str = "top_blocks"
    n: int = 2
    layer: str = None
    head_epochs: int = None
    fine_tune_epochs: int = None
    head_learning_rate: float = None
    fine_tune_learning_rate: float = None
    batch_size: int = None
    layer_decay: float = 0.5
    label_smoothing: float = None
    l2sp: float = None
    head_l1: float = 0.0
    head_l2: float = 0.0
    lr_scale: float = 1.0


def _head(size, options, pretrained):
    preset = get_preset("feature_extraction", learning_rate=options.head_learning_rate,
                        label_smoothing=options.label_smoothing, train_batchnorm=not pretrained)
    return budget(preset, size, epochs=options.head_epochs, min_steps=MIN_HEAD_STEPS, batch_size=options.batch_size)


def _probe(size):
    views = PROBE_VIEWS if size.images <= PROBE_VIEWS_UP_TO else 0
    return Preset("linear_probe", strategy="head_only", solver="linear", epochs=1, patience=0, reduce_lr_patience=0,
                  views=views)


def _fine_tune(size, options, pretrained, *, strategy, n, rate, **fields):
    preset = get_preset("fine_tune", strategy=strategy, n=n, layer=options.layer, label_smoothing=options.label_smoothing,
                        learning_rate=options.fine_tune_learning_rate or rate, train_batchnorm=not pretrained, **fields)
    return budget(preset, size, epochs=options.fine_tune_epochs, min_steps=MIN_FINE_TUNE_STEPS,
                  batch_size=options.batch_size)


def two_phase(size, options, pretrained=True):
    """The head at 1e-3, then the top blocks (or the chosen unfreezing) at 1e-5, each with a step budget."""
    phases = [("head", _head(size, options, pretrained))]
    if options.strategy == "gradual":
        return phases + _stages(size, options, pretrained, rate=1e-5, schedule="constant")
    if options.strategy != "head_only":
        phases.append(("fine_tune", _fine_tune(size, options, pretrained, strategy=options.strategy, n=options.n,
                                               rate=1e-5)))
    return phases


def lp_ft(size, options, pretrained=True):
    """The head to convergence (linear probe), then the top blocks with per-block rates, warmup and cosine
    decay, kept only if they beat the probe on the validation split."""
    phases = [("head", _probe(size))]
    if options.strategy == "gradual":
        return phases + _stages(size, options, pretrained, rate=1e-4, schedule="cosine")
    if options.strategy != "head_only":
        phases.append(("fine_tune", _fine_tune(size, options, pretrained, strategy=options.strategy, n=options.n,
                                               rate=1e-4, schedule="cosine", warmup=0.1,
                                               layer_decay=options.layer_decay, keep_start=True)))
    return phases


def gradual(size, options, pretrained=True):
    """The converged head, then one more top block per stage up to `n`, one optimizer and one schedule."""
    return [("head", _probe(size))] + _stages(size, options, pretrained, rate=1e-4, schedule="cosine")


def _stages(size, options, pretrained, *, rate, schedule):
    """Gradual unfreezing: stage k trains the top k blocks; each stage's optimizer starts from the last one's
    state (step count, and the moments of the blocks already training), and one schedule spans them all."""
    stages = [_fine_tune(size, options, pretrained, strategy="top_blocks", n=k, rate=rate, schedule=schedule,
                         warmup=0.1 if schedule == "cosine" else 0.0, layer_decay=options.layer_decay,
                         keep_optimizer=k > 1)
              for k in range(1, options.n + 1)]
    total = sum(stage.epochs * stage.steps_per_epoch for stage in stages)
    return [(f"fine_tune_{k}", dataclasses.replace(stage, schedule_steps=total))
            for k, stage in enumerate(stages, start=1)]


def scratch(size, options, pretrained=False):
    """Every layer from random weights, BatchNorm trained (momentum 0.9, so its statistics follow within a few
    hundred steps), Adam with warmup and cosine decay; a classifier keeps its epoch of best validation accuracy,
    the loss breaking ties (a from-scratch network's lowest-loss epoch can be an untrained one)."""
    preset = get_preset("fine_tune_all", name="scratch", learning_rate=options.fine_tune_learning_rate or 3e-4,
                        label_smoothing=options.label_smoothing, schedule="cosine", warmup=0.1, train_batchnorm=True,
                        batchnorm_momentum=0.9, patience=5, monitor="auto")
    return [("scratch", budget(preset, size, epochs=options.fine_tune_epochs or options.head_epochs,
                               min_steps=MIN_SCRATCH_STEPS, batch_size=options.batch_size))]


NAMED = dict(two_phase=two_phase, lp_ft=lp_ft, gradual=gradual, scratch=scratch)


def choose_recipe(size, options, pretrained, few_shot=FEW_SHOT):
    """`(recipe name, why)`, or `(recipe name, why, strategy)` where the data also decide the strategy: what
    `"auto"` runs for this data. Under `few_shot` training examples a class: the converged head alone."""
    if not pretrained and options.strategy == "head_only":
        return "lp_ft", "no pretrained weights, strategy 'head_only': the head alone, fitted on the random features"
    if not pretrained:
        return "scratch", "no pretrained weights: every layer trains, BatchNorm included"
    if options.strategy == "gradual":
        return "gradual", "strategy 'gradual': the converged head, then one more block per stage"
    if size.images > LARGE_DATA:
        return "two_phase", (f"{size.images} training images (over {LARGE_DATA}): the head trains by gradient "
                             "steps, cheaper there than solving it on every image's features")
    per_class = size.images / size.classes
    if per_class < few_shot:
        return "lp_ft", (f"{size.images} training images ({per_class:.1f} a class, under {few_shot}): the head fitted "
                         f"to convergence on the frozen features, no fine-tuning (not measured to pay under {few_shot} "
                         "a class)"), "head_only"
    why = f" ({FEW_SHOT_WHY})" if per_class < TEXT_FEW_SHOT else ""  # images only: what fine-tuning there rests on
    return "lp_ft", (f"{size.images} training images ({per_class:.1f} a class): the head fitted to convergence first, "
                     f"then fine-tuning that keeps it only if it does better on validation{why}")


def plan_recipe(recipe, size, options=None, *, pretrained=True, few_shot=FEW_SHOT):
    """`(recipe name, [(phase name, Preset)], [lines saying what was chosen and why])`.

    Example:
    >>> name, phases, why = plan_recipe("auto", DataSize(images=300, classes=3))
    >>> name, [phase for phase, _ in phases]
    ('lp_ft', ['head', 'fine_tune'])
    """
    options = options or RecipeOptions()
    if recipe not in RECIPES:
        raise unknown_name("recipe", recipe, RECIPES)
    if options.strategy not in STRATEGIES:
        raise unknown_name("strategy", options.strategy, STRATEGIES)
    why = [f"recipe '{recipe}'"]
    if recipe == "auto":
        recipe, reason, *strategy = choose_recipe(size, options, pretrained, few_shot)
        why = [f"recipe 'auto' -> '{recipe}': {reason}"]
        if strategy:
            options = dataclasses.replace(options, strategy=strategy[0])
    if recipe == "scratch" and pretrained:
        why.append("recipe 'scratch' with pretrained weights: they are the starting point, every layer trains")
    phases = NAMED[recipe](size, options, pretrained)
    if options.lr_scale != 1:
        phases = [(name, dataclasses.replace(preset, learning_rate=preset.learning_rate * options.lr_scale))
                  for name, preset in phases]
        why.append(f"learning rates x{options.lr_scale:g}: the linear scaling rule for a global batch "
                   f"{options.lr_scale:g} x the single-device one")
    why += [describe(name, preset) for name, preset in phases]
    if not pretrained and recipe != "scratch":
        why.append("no pretrained weights: BatchNorm layers train in every phase")
    return recipe, phases, why


def describe(name, preset):
    """One line: what a phase trains, how long and why that long."""
    if preset.solver == "linear":
        views = f", with {preset.views} shifted views of each image ({PROBE_VIEWS_WHY})" if preset.views else ""
        return (f"phase '{name}': the head fitted to convergence on the frozen features (L-BFGS, l2 by validation "
                f"accuracy, then loss){views}")
    what = {"head_only": "the head", "full": "every layer",
            "from_layer": f"the backbone from {preset.layer}"}.get(preset.strategy, f"the top {preset.n} block(s)")
    rate = f"{preset.optimizer} {preset.learning_rate:g}" + (f", {preset.schedule}" if preset.schedule != "constant" else "")
    if preset.schedule == "cosine" and preset.warmup_steps:
        rate += f" after {preset.warmup_steps} warmup steps"
    if preset.layer_decay is not None and preset.strategy != "head_only":
        rate += f", x{preset.layer_decay:g} per block down"
    steps = preset.epochs * preset.steps_per_epoch
    return (f"phase '{name}': {what}, {rate}; {preset.epochs} epochs x {preset.steps_per_epoch} steps of "
            f"{preset.batch_size} = {steps} steps ({preset.budget_reason})")


def run_recipe(model, train, val=None, *, recipe="auto", pretrained=None, options=None, num_examples=None,
               checkpoint_path=None, csv_path=None, callbacks=(), class_weight=None, verbose="auto",
               cache_features=False, cache_dir=None, jit_compile="auto", state=None, num_images=None):
    """Trains `model` with a named recipe, planned from the data size; a text model's plan is `plan_text_recipe`'s.

    Args:
        model: a model made by `build_model` (images, any task) or `build_text_classifier`.
        train: `(images, labels)` arrays or `tf.data.Dataset`s of `(inputs, labels)` batches (images, or a text
            model's token ids).
        val: the validation data, as `train`.
        recipe: `"auto"`, `"two_phase"`, `"lp_ft"`, `"gradual"` or `"scratch"`.
        pretrained: whether the backbone holds pretrained weights (`False`: BatchNorm trains; `"auto"` runs
            `scratch`); `None` (the default): `resolve_pretrained`. A model rebuilt for resuming has its weights
            from the checkpoint: say what it was built with.
        options: a `RecipeOptions` (strategy, epochs, rates, batch size, ...).
        num_examples: the number of training examples (images or texts), where `train` cannot tell (a dataset of
            unknown size).
        checkpoint_path: as in `run_phases`.
        csv_path: as in `run_phases`.
        callbacks: as in `run_phases`.
        class_weight: as in `run_phases`.
        verbose: as in `run_phases`.
        cache_features: as in `run_phases`.
        cache_dir: as in `run_phases`.
        jit_compile: as in `run_phases`.
        state: as in `run_phases`.
        num_images: the former name of `num_examples` (deprecated: a `DeprecationWarning`, the same meaning).

    Returns:
        A `FineTuneResult` whose `recipe` names the recipe run and `plan` says what it chose and why.

    Example:
    >>> model = build_classifier("vgg16", 3, weights=None, input_size=32, augmentation=None)
    >>> x, y = np.random.rand(12, 32, 32, 3) * 255, np.arange(12) % 3
    >>> run_recipe(model, (x, y), (x, y), recipe="lp_ft", verbose=0).phases
    ['head', 'fine_tune']
    """
    options, text = options or RecipeOptions(), is_text_model(model)
    size = data_size(model, train, _num_examples(num_examples, num_images))
    pretrained, reason = resolve_pretrained(model, pretrained)
    name, phases, why = planner(model)(recipe, size, options, pretrained=pretrained)
    why = why[:1] + [reason] + why[1:] if reason else why
    if options.l2sp:
        why.append(str(attach_l2sp(model, options.l2sp)))  # the reference: the weights the model holds now
    if options.head_l1 or options.head_l2:
        regularize_head(model, l1=options.head_l1, l2=options.head_l2)
        why.append(f"head penalty: l1 {options.head_l1:g}, l2 {options.head_l2:g}")
    # a random backbone whose BatchNorm cannot train collapses its features: say so, and stop (an encoder
    # normalises with LayerNorm, which keeps no statistics)
    if not (pretrained or text):
        callbacks = _collapse_check(train, why) + list(callbacks)
    for line in why:
        log.info("%s", line)
    result = run_phases(model, train, val, phases, checkpoint_path=checkpoint_path, csv_path=csv_path,
                        callbacks=callbacks, class_weight=class_weight, verbose=verbose, cache_features=cache_features,
                        cache_dir=cache_dir, jit_compile=jit_compile, state=state)
    result.recipe, result.plan = name, why
    return result


COLLAPSE_SAMPLE = 32  # training images the feature-collapse check compares


def _collapse_check(train, why):
    """`[FeatureCollapseCheck]` on up to 32 training images, gathered over batches (a tiny run's batch holds one
    image, and one image has no spread: the check failed valid runs); with fewer than 2 images, none, said in `why`."""
    sample = sample_batches(train, images=COLLAPSE_SAMPLE)
    x = np.concatenate(sample)[:COLLAPSE_SAMPLE] if sample else np.zeros((0,))
    if len(x) < 2:
        why.append(f"feature-collapse check skipped: it compares the features of 2 or more images, and the "
                   f"training data holds {len(x)}")
        return []
    return [FeatureCollapseCheck(x)]


def plan_text_recipe(recipe, size, options=None, *, pretrained=True):
    """`(recipe name, [(phase, Preset)], why)`: `plan_recipe` with the encoder rates and AdamW."""
    options = options or RecipeOptions()
    if options.fine_tune_learning_rate is None:
        rate = TEXT_FINE_TUNE_RATE if pretrained else TEXT_SCRATCH_RATE
        options = dataclasses.replace(options, fine_tune_learning_rate=rate)
    name, phases, why = plan_recipe(recipe, size, options, pretrained=pretrained, few_shot=TEXT_FEW_SHOT)
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


def planner(model):
    """`plan_text_recipe` for a text model, else `plan_recipe`."""
    return plan_text_recipe if is_text_model(model) else plan_recipe


def _num_examples(num_examples, num_images):
    """`num_examples`, or the deprecated `num_images` (a `DeprecationWarning`; refused when both disagree)."""
    if num_images is None:
        return num_examples
    warnings.warn("run_recipe's num_images= is deprecated: pass num_examples= (the number of training images or "
                  "texts).", DeprecationWarning, stacklevel=3)
    if num_examples is not None and num_examples != num_images:
        raise KerasTransferError("Pass the number of training examples once, as num_examples= (num_images= is its "
                                 f"deprecated name). Received: num_examples={num_examples!r}, "
                                 f"num_images={num_images!r}")
    return num_images


def data_size(model, train, num_examples=None):
    """The `DataSize` a recipe plans from: training examples (given, or counted), classes and a dataset's batch."""
    images = num_examples if num_examples is not None else images_in(train)
    if not images:
        raise KerasTransferError("The recipe needs the number of training examples: pass num_examples= for a "
                                 f"dataset of unknown size. Received: num_examples={num_examples!r}")
    units = int(head_layers(model)[-1].units)
    return DataSize(images=int(images), classes=2 if units == 1 else units,
                    batch=None if train is None else batch_of(train))


def fine_tune(model, train, val=None, *, head_epochs=None, fine_tune_epochs=None, unfreeze="top_blocks",
              n=2, layer=None, head_preset="feature_extraction", fine_tune_preset="fine_tune",
              head_learning_rate=None, fine_tune_learning_rate=None, checkpoint_path=None, csv_path=None,
              callbacks=(), class_weight=None, verbose="auto", cache_features=False, cache_dir=None,
              jit_compile="auto", state=None, label_smoothing=None):
    """Trains the head first, then unfreezes the backbone's top and continues at a lower rate, counted in
    epochs (the classic two phases; `run_recipe` plans by steps and picks the recipe).

    1. freeze the backbone, compile with `head_preset`, fit `head_epochs`;
    2. unfreeze (`"top_blocks"`: the top `n` blocks; `"from_layer"`: from `layer` on; `"full"`;
       `"gradual"`: one more top block per stage up to `n`, `fine_tune_epochs` each, one optimizer
       across the stages), recompile with `fine_tune_preset`, fit on from where phase 1 stopped.

    EarlyStopping restores each phase's best weights; BatchNorm layers stay frozen.

    Args:
        model: a model made by `build_classifier`.
        train: `tf.data.Dataset`s of (images, labels), or `(images, labels)` tuples of arrays.
        val: the validation data, as `train`.
        head_epochs: epochs of the head phase (default: the preset's).
        fine_tune_epochs: epochs of the fine-tuning phase (default: the preset's).
        head_learning_rate: overrides the head preset's rate.
        fine_tune_learning_rate: overrides the fine-tuning preset's rate.
        label_smoothing: overrides both presets' label smoothing.
        checkpoint_path: optional `.keras` path for the best model over all phases.
        csv_path: optional CSV log over all phases.
        callbacks: extra Keras callbacks for every phase.
        class_weight: as in `model.fit`.
        cache_features: train the head phase on backbone features computed once (needs a model built
            with `augmentation="none"`; see `caching.train_phase_cached`).
        cache_dir: `None` keeps cached features in memory; a folder streams them to disk.
        jit_compile: `"auto"`, `True` or `False`, passed to `compile_model`.
        state: a `checkpoints.TrainingState`: saves `last.keras` + `state.json` every epoch, and resumes.

    Returns:
        A `FineTuneResult`.

    Example:
    >>> model = build_classifier("mobilenetv2", 3, weights=None, input_size=32)
    >>> x, y = np.random.rand(8, 32, 32, 3) * 255, np.arange(8) % 3
    >>> result = fine_tune(model, (x, y), head_epochs=1, fine_tune_epochs=1, verbose=0)
    >>> result.phases
    ['head', 'fine_tune']
    """
    if unfreeze not in UNFREEZE:
        raise unknown_name("unfreeze", unfreeze, UNFREEZE)
    head = get_preset(head_preset, epochs=head_epochs, learning_rate=head_learning_rate,
                      label_smoothing=label_smoothing)
    fine = get_preset(fine_tune_preset, epochs=fine_tune_epochs, learning_rate=fine_tune_learning_rate,
                      label_smoothing=label_smoothing)
    if unfreeze == "gradual":
        stages = [(f"fine_tune_{k}", dataclasses.replace(fine, strategy="top_blocks", n=k, keep_optimizer=k > 1))
                  for k in range(1, n + 1)]
    else:
        stages = [("fine_tune", dataclasses.replace(fine, strategy=unfreeze, n=n, layer=layer))]
    return run_phases(model, train, val, [("head", head)] + stages, checkpoint_path=checkpoint_path,
                      csv_path=csv_path, callbacks=callbacks, class_weight=class_weight, verbose=verbose,
                      cache_features=cache_features, cache_dir=cache_dir, jit_compile=jit_compile, state=state)
