"""Loads a folder of class subfolders into batched, prefetched training and validation sets."""

import dataclasses
import os

import keras

from keras_transfer.errors import KerasTransferError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass
class ImageFolderData:
    """Training and validation `tf.data.Dataset`s of (uint8-range float images, int labels)."""

    train: object
    val: object
    class_names: list
    counts: dict

    @property
    def num_classes(self):
        return len(self.class_names)


def scan_image_folder(directory):
    """Checks a folder of class subfolders and counts images per class.

    Raises:
        KerasTransferError: if the folder is missing, has fewer than two class subfolders,
            or a class subfolder holds no image.
    """
    if not os.path.isdir(directory):
        raise KerasTransferError(f"Data folder not found: {directory}. Received: data_dir={directory!r}")
    classes = sorted(d for d in os.listdir(directory)
                     if os.path.isdir(os.path.join(directory, d)) and not d.startswith("."))
    if len(classes) < 2:
        raise KerasTransferError(
            f"Data folder {directory} needs one subfolder per class, at least two; found "
            f"{len(classes)} ({', '.join(classes) or 'none'}). Received: data_dir={directory!r}"
        )
    counts = {}
    for name in classes:
        files = [f for f in os.listdir(os.path.join(directory, name))
                 if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
        counts[name] = len(files)
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise KerasTransferError(
            f"Class folder(s) {', '.join(empty)} in {directory} hold no images "
            f"({', '.join(IMAGE_EXTENSIONS)}). Add images or remove the folder. Received: data_dir={directory!r}"
        )
    return counts


def load_image_folder(directory, *, image_size, batch_size=32, validation_split=0.2, seed=1337):
    """Loads `directory/<class>/<image>` into training and validation sets.

    Images are resized to `image_size` x `image_size`, kept as raw RGB values in [0, 255] (the
    model preprocesses them itself), batched and prefetched. The same `seed` gives the same split.

    Args:
        directory: a folder with one subfolder of images per class.
        image_size: the square side the model takes (e.g. `spec.default_size`).
        batch_size: batch size.
        validation_split: the share of images held out for validation (0 for none).
        seed: seed of the split and the shuffling.

    Returns:
        An `ImageFolderData`.
    """
    counts = scan_image_folder(directory)
    if not 0 <= validation_split < 1:
        raise KerasTransferError(f"validation_split must be in [0, 1). Received: validation_split={validation_split!r}")
    import tensorflow as tf

    common = dict(labels="inferred", label_mode="int", class_names=sorted(counts), color_mode="rgb",
                  batch_size=batch_size, image_size=(image_size, image_size), seed=seed)
    if validation_split:
        train, val = keras.utils.image_dataset_from_directory(
            directory, validation_split=validation_split, subset="both", **common)
    else:
        train, val = keras.utils.image_dataset_from_directory(directory, **common), None
    autotune = tf.data.AUTOTUNE
    train = train.prefetch(autotune)
    val = val.prefetch(autotune) if val is not None else None
    return ImageFolderData(train=train, val=val, class_names=sorted(counts), counts=counts)
