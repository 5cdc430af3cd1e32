"""keras_transfer: transfer learning with pretrained Keras 3 backbones, fast, correct and boring."""

from keras_transfer.augmentation import make_augmentation
from keras_transfer.backbones import BackboneSpec, get_backbone_spec, list_backbones
from keras_transfer.errors import KerasTransferError
from keras_transfer.freezing import FreezeReport, freeze
from keras_transfer.model import ClassifierHead, build_classifier, get_backbone, get_class_names
from keras_transfer.preprocessing import ImagePreprocessing
from keras_transfer.weights import WeightsError, load_weights_by_order

__version__ = "0.1.0"
