"""keras_transfer: transfer learning with pretrained Keras 3 backbones, fast, correct and boring."""

from keras_transfer.augmentation import make_augmentation
from keras_transfer.backbones import BackboneSpec, get_backbone_spec, list_backbones, split_blocks
from keras_transfer.caching import extract_features, train_head_cached
from keras_transfer.data import ImageFolderData, LabelledImages, find_images, load_image_folder
from keras_transfer.errors import KerasTransferError
from keras_transfer.evaluation import EvaluationReport, evaluate
from keras_transfer.export import ExportResult, export_saved_model
from keras_transfer.freezing import FreezeReport, backbone_blocks, freeze
from keras_transfer.model import (ClassifierHead, build_classifier, class_indices, get_backbone,
                                  get_class_names)
from keras_transfer.pipeline import make_dataset
from keras_transfer.preprocessing import ImagePreprocessing
from keras_transfer.plots import plot_confusion_matrix, plot_history
from keras_transfer.predict import predict
from keras_transfer.presets import PRESETS, Preset, compile_model, get_preset, phase_callbacks, run_callbacks
from keras_transfer.recipes import FineTuneResult, fine_tune, run_phases
from keras_transfer.runs import train_from_folder
from keras_transfer.splits import DataSummary, class_weights, split_images
from keras_transfer.weights import WeightsError, build_backbone, load_weights_by_order

__version__ = "0.1.0"
