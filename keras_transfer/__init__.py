"""keras_transfer: transfer learning with pretrained Keras 3 backbones, fast, correct and boring."""

from keras_transfer.models.augmentation import make_augmentation
from keras_transfer.models.registry import BackboneSpec, get_backbone_spec, list_backbones, split_blocks
from keras_transfer.training.caching import extract_features, train_head_cached
from keras_transfer.data.sources import ImageFolderData, LabelledImages, find_images, load_image_folder
from keras_transfer.errors import KerasTransferError
from keras_transfer.serving.evaluation import EvaluationReport, evaluate
from keras_transfer.serving.export import ExportResult, export_saved_model
from keras_transfer.models.freezing import FreezeReport, backbone_blocks, freeze
from keras_transfer.models.classifier import (ClassifierHead, build_classifier, class_indices, get_backbone,
                                  get_class_names)
from keras_transfer.data.pipeline import make_dataset
from keras_transfer.models.preprocessing import ImagePreprocessing
from keras_transfer.serving.plots import plot_confusion_matrix, plot_history
from keras_transfer.serving.predict import predict
from keras_transfer.training.presets import PRESETS, Preset, compile_model, get_preset, phase_callbacks, run_callbacks
from keras_transfer.training.recipes import FineTuneResult, fine_tune, run_phases
from keras_transfer.runs.train import train_from_folder
from keras_transfer.data.splits import DataSummary, class_weights, split_images
from keras_transfer.models.weights import WeightsError, build_backbone, load_weights_by_order

__version__ = "0.1.0"
