"""keras_transfer: transfer learning with pretrained Keras 3 backbones, fast, correct and boring.

The package is layered; imports point down only:
    errors, io, layout, history, version       the base: errors, atomic files, the run folder's file names
    models/    the backbone registry, weights, the classifier, freezing, precision
    data/      image decoding, folders and manifests, splits, the tf.data pipeline
    training/  presets, optimizers and schedules, step budgets, the linear probe, phases, named recipes, callbacks,
               the per-epoch state, feature caching
    serving/   loading a trained model, predict, evaluate, plots, export
    runs/      the run configuration, a run folder, train_from_folder, resume, select_backbones
    cli, demo  the `keras-transfer` command and the offline demo
"""

from keras_transfer.data.pipeline import make_dataset
from keras_transfer.data.sources import ImageFolderData, LabelledImages, find_images, load_image_folder
from keras_transfer.data.task_sources import TaskData, TaskImages, find_task_images, load_task_data
from keras_transfer.data.splits import DataSummary, class_weights, split_images
from keras_transfer.errors import KerasTransferError
from keras_transfer.models.augmentation import make_augmentation
from keras_transfer.models.classifier import (ClassifierHead, build_classifier, class_indices, get_backbone,
                                              get_class_names, head_model)
from keras_transfer.models.heads import (TaskHead, build_model, get_thresholds, set_thresholds, standardisation,
                                         task_loss, task_metrics, task_of)
from keras_transfer.models.label_weights import WeightedBinaryCrossentropy, positive_weights
from keras_transfer.models.freezing import FreezeReport, backbone_blocks, freeze
from keras_transfer.models.preprocessing import ImagePreprocessing
from keras_transfer.models.registry import BackboneSpec, get_backbone_spec, list_backbones, split_blocks
from keras_transfer.models.weights import WeightsError, build_backbone, load_weights_by_order
from keras_transfer.runs.config import RunConfig
from keras_transfer.runs.resume import resume_run
from keras_transfer.runs.select import Candidate, Selection, select_backbones
from keras_transfer.runs.train import train_from_folder
from keras_transfer.serving.evaluation import EvaluationReport, evaluate
from keras_transfer.serving.export import ExportResult, export, export_saved_model
from keras_transfer.serving.loading import load_model
from keras_transfer.serving.plots import plot_confusion_matrix, plot_history
from keras_transfer.serving.predict import predict
from keras_transfer.serving.task_metrics import choose_thresholds, multilabel_metrics, regression_metrics
from keras_transfer.serving.task_report import TaskReport, evaluate_task, task_outputs
from keras_transfer.training.caching import extract_features, train_head_cached
from keras_transfer.training.presets import PRESETS, Preset, compile_model, get_preset, phase_callbacks, run_callbacks
from keras_transfer.training.budget import DataSize
from keras_transfer.training.diagnostics import FeatureCollapseCheck, FeatureCollapseError, check_features
from keras_transfer.training.linear_probe import LinearProbe, fit_linear_head
from keras_transfer.training.task_probe import TaskProbe, fit_task_head
from keras_transfer.training.transferability import logme, probe_score
from keras_transfer.training.lr_finder import LRFinderResult, find_lr
from keras_transfer.training.optimizers import (LayerwiseAdam, LayerwiseAdamW, LayerwiseRMSprop, LayerwiseSGD,
                                                block_multipliers, make_optimizer)
from keras_transfer.training.phases import FineTuneResult, run_phases
from keras_transfer.training.recipes import RECIPES, RecipeOptions, fine_tune, plan_recipe, run_recipe
from keras_transfer.training.regularization import attach_l2sp, detach_regularization, regularize_head
from keras_transfer.training.schedules import OneCycle, WarmupCosine, make_schedule
from keras_transfer.version import __version__

__all__ = [
    # models
    "BackboneSpec", "ClassifierHead", "FreezeReport", "ImagePreprocessing", "WeightsError", "backbone_blocks",
    "build_backbone", "build_classifier", "class_indices", "freeze", "get_backbone", "get_backbone_spec",
    "get_class_names", "head_model", "list_backbones", "load_weights_by_order", "make_augmentation", "split_blocks",
    "TaskHead", "build_model", "get_thresholds", "set_thresholds", "standardisation", "task_loss", "task_metrics",
    "task_of", "WeightedBinaryCrossentropy", "positive_weights",
    # data
    "DataSummary", "ImageFolderData", "LabelledImages", "class_weights", "find_images", "load_image_folder",
    "make_dataset", "split_images", "TaskData", "TaskImages", "find_task_images", "load_task_data",
    # training
    "PRESETS", "RECIPES", "DataSize", "FineTuneResult", "LayerwiseAdam", "LayerwiseAdamW", "LayerwiseRMSprop",
    "LayerwiseSGD", "LinearProbe", "OneCycle", "Preset", "RecipeOptions", "WarmupCosine", "block_multipliers",
    "compile_model", "extract_features", "fine_tune", "fit_linear_head", "get_preset", "make_optimizer",
    "make_schedule", "phase_callbacks", "plan_recipe", "run_callbacks", "run_phases", "run_recipe",
    "train_head_cached", "FeatureCollapseCheck", "FeatureCollapseError", "LRFinderResult", "attach_l2sp",
    "check_features", "detach_regularization", "find_lr", "regularize_head",
    "TaskProbe", "fit_task_head", "logme", "probe_score",
    # serving
    "TaskReport", "choose_thresholds", "evaluate_task", "task_outputs", "multilabel_metrics", "regression_metrics",
    "EvaluationReport", "ExportResult", "evaluate", "export", "export_saved_model", "load_model",
    "plot_confusion_matrix", "plot_history", "predict",
    # runs
    "Candidate", "RunConfig", "Selection", "resume_run", "select_backbones", "train_from_folder",
    # errors
    "KerasTransferError",
    "__version__",
]
