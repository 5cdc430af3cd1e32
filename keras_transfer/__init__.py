"""keras_transfer: transfer learning with pretrained Keras 3 backbones, fast, correct and boring.

The public API is `keras_transfer.api` (`__all__` below): train, resume, load data, build, fit with a named
recipe, load, predict, evaluate, export, list and select backbones, for images and texts, every task.
Everything else is importable from its module. The package is layered; imports point down only:
    errors, io, layout, history, version       the base: errors, atomic files, the run folder's file names
    models/    the backbone registries (image, text), weights, the classifier and task heads, freezing, precision
    data/      image decoding, folders and manifests, texts, splits, the tf.data pipeline
    training/  presets, optimizers and schedules, step budgets, the linear probe, phases, named recipes, callbacks,
               the per-epoch state, feature caching
    serving/   loading a trained model, predict, evaluate, plots, export
    runs/      the run configuration, a run folder, train_from_folder, resume, select_backbones
    api        the public functions, dispatching on modality and task
    cli, demo  the `keras-transfer` command and the offline demo
"""

import importlib
import warnings

from keras_transfer.api import (KerasTransferError, RunConfig, __version__, build_model, evaluate, export, fit,
                                list_backbones, load_data, load_model, predict, resume, select_backbones, train)

__all__ = ["train", "resume", "load_data", "build_model", "fit", "load_model", "predict", "evaluate", "export",
           "list_backbones", "select_backbones", "RunConfig", "KerasTransferError", "__version__"]

# Names the package's top level exported before `api`: each still resolves, with a DeprecationWarning that names
# its replacement in `__all__` or the module to import it from.
MOVED = {
    "data.pipeline": ("make_dataset",),
    "data.sources": ("find_images", "ImageFolderData", "LabelledImages", "load_image_folder"),
    "data.splits": ("class_weights", "DataSummary", "split_images"),
    "data.task_sources": ("find_task_images", "load_task_data", "TaskData", "TaskImages"),
    "models.augmentation": ("make_augmentation",),
    "models.classifier": ("build_classifier", "class_indices", "ClassifierHead", "get_backbone", "get_class_names",
                          "head_model"),
    "models.freezing": ("backbone_blocks", "freeze", "FreezeReport"),
    "models.heads": ("get_thresholds", "set_thresholds", "standardisation", "task_loss", "task_metrics", "task_of",
                     "TaskHead"),
    "models.label_weights": ("positive_weights", "WeightedBinaryCrossentropy"),
    "models.preprocessing": ("ImagePreprocessing",),
    "models.registry": ("BackboneSpec", "get_backbone_spec", "split_blocks"),
    "models.weights": ("build_backbone", "load_weights_by_order", "WeightsError"),
    "runs.resume": ("resume_run",),
    "runs.select": ("Candidate", "Selection"),
    "runs.train": ("train_from_folder",),
    "serving.evaluation": ("EvaluationReport", "evaluate_task"),
    "serving.export": ("export_saved_model", "ExportResult"),
    "serving.plots": ("plot_confusion_matrix", "plot_history"),
    "serving.task_metrics": ("choose_thresholds", "multilabel_metrics", "regression_metrics"),
    "serving.task_report": ("task_outputs", "TaskReport"),
    "training.budget": ("DataSize",),
    "training.caching": ("extract_features", "train_head_cached"),
    "training.diagnostics": ("check_features", "FeatureCollapseCheck", "FeatureCollapseError"),
    "training.linear_probe": ("fit_linear_head", "fit_task_head", "LinearProbe", "TaskProbe"),
    "training.lr_finder": ("find_lr", "LRFinderResult"),
    "training.optimizers": ("block_multipliers", "LayerwiseAdam", "LayerwiseAdamW", "LayerwiseRMSprop",
                            "LayerwiseSGD", "make_optimizer"),
    "training.phases": ("FineTuneResult", "run_phases"),
    "training.presets": ("compile_model", "get_preset", "phase_callbacks", "Preset", "PRESETS", "run_callbacks"),
    "training.recipes": ("fine_tune", "plan_recipe", "RecipeOptions", "RECIPES", "run_recipe"),
    "training.regularization": ("attach_l2sp", "detach_regularization", "regularize_head"),
    "training.schedules": ("make_schedule", "OneCycle", "WarmupCosine"),
    "training.transferability": ("logme", "probe_score"),
}
REPLACED_BY = {
    "train_from_folder": "train",
    "resume_run": "resume",
    "fine_tune": "fit",
    "run_recipe": "fit",
    "run_phases": "fit",
    "load_image_folder": "load_data",
    "load_task_data": "load_data",
    "build_classifier": "build_model",
    "evaluate_task": "evaluate",
    "export_saved_model": "export",
}
_HOME = {name: module for module, names in MOVED.items() for name in names}


def __getattr__(name):
    """Resolves a name that left `__all__` from its module, warning which name or module to use instead."""
    if name not in _HOME:
        raise AttributeError(f"module 'keras_transfer' has no attribute {name!r}")
    module = f"keras_transfer.{_HOME[name]}"
    instead = f"keras_transfer.{REPLACED_BY[name]}" if name in REPLACED_BY else f"{module}.{name}"
    warnings.warn(f"keras_transfer.{name} is deprecated and leaves the top level in the next release; use "
                  f"{instead}.", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_HOME))
