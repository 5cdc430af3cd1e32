"""The task parts of a run: what the head needs from the training data (standardisation, label weights, class
weights), what happens after fit (multi-label thresholds) and the report. `runs.train.run_training` composes one
with a modality part (`runs.modalities`).

- classification: balanced class weights (`class_weight="balanced"`), label smoothing; the test split's report;
- regression: the targets' standardisation, stored in the head; the test (else validation) `TaskReport`;
- multi-label: per-label positive weights (`class_weight="balanced"`: the training split's negatives / positives
  in [1, 10], `models.label_weights`); each label's threshold chosen on the validation split (maximising its F1)
  and stored in `best.keras`; the test (else validation) `TaskReport`.
"""

import collections
import logging
import os

from keras_transfer import io
from keras_transfer.data.splits import class_weights
from keras_transfer.layout import BEST_MODEL, REPORT_TXT
from keras_transfer.models.heads import set_thresholds, standardisation
from keras_transfer.models.label_weights import positive_weights
from keras_transfer.models.saving import load_keras_file
from keras_transfer.serving.task_metrics import choose_thresholds
from keras_transfer.serving.evaluation import report_and_write
from keras_transfer.serving.task_report import task_outputs

log = logging.getLogger(__name__)

Head = collections.namedtuple("Head", "build class_weight stored recipe")
Head.__doc__ = """What a task takes from the training data: `build` (the head's `build_model` keywords),
`class_weight` (for `fit`), `stored` (added to `config.json`), `recipe` (`RecipeOptions` fields)."""


class Classification:
    """One class per input: see the module docstring."""

    def head(self, config, data):
        weights = class_weights(data.train_targets, len(data.names)) if config.class_weight else None
        return Head({}, weights, dict(class_weights=weights and {str(k): v for k, v in weights.items()}),
                    dict(label_smoothing=config.label_smoothing))

    def finish(self, out, model, data, modality, config):
        """The test split's report."""
        return report(out, _best(out, model), data, modality, config, ("test",))


class Regression:
    """Values per input: see the module docstring."""

    def head(self, config, data):
        mean, scale = standardisation(data.train_targets)
        return Head(dict(loss=config.loss, target_mean=mean, target_scale=scale), None, dict(label_weights=None), {})

    def finish(self, out, model, data, modality, config):
        """The test (else validation) split's report."""
        return report(out, _best(out, model), data, modality, config, ("test", "val"))


class Multilabel:
    """Labels per input: see the module docstring."""

    def head(self, config, data):
        weights = positive_weights(data.train_targets) if config.class_weight else None
        return Head(dict(loss=config.loss, label_weights=weights), None,
                    dict(label_weights=weights and dict(zip(data.names, weights))), {})

    def finish(self, out, model, data, modality, config):
        """Chooses each label's threshold on the validation split, stores it in `best.keras` and `model`, then
        reports."""
        best = _best(out, model)
        if data.val is not None:
            thresholds = choose_thresholds(*task_outputs(best, data.val))
            set_thresholds(best, thresholds)
            set_thresholds(model, thresholds)
            with io.atomic_path(os.path.join(out, BEST_MODEL), ".keras") as tmp:
                best.save(tmp)
            log.info("Per-label thresholds chosen on the validation split (best F1): %s",
                     dict(zip(data.names, thresholds)))
        return report(out, best, data, modality, config, ("test", "val"))


TASK_PARTS = dict(classification=Classification(), regression=Regression(), multilabel=Multilabel())


def _best(out, fallback):
    path = os.path.join(out, BEST_MODEL)
    return load_keras_file(path) if os.path.isfile(path) else fallback


def report(out, best, data, modality, config, splits):
    """The report of `best` on the first of `splits` that holds examples (None if none does): its outputs from the
    modality, the report of its task (`evaluation.report_and_write`) in `report.json` / `report.txt` and, with
    matplotlib, the plots (a classifier's confusion matrix, a regression model's residuals and predicted vs true)."""
    split = next((split for split in splits if getattr(data, split) is not None), None)
    if split is None:
        return None
    outputs, targets, ids = modality.outputs(best, data, split, config)
    result, _ = report_and_write(best, outputs, targets, data.names, ids=ids, out=out)
    log.info("The %s split: %s; full report in %s", split, result.summary().splitlines()[0],
             os.path.join(out, REPORT_TXT))
    return result
