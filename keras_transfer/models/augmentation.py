"""Augmentation presets: Keras preprocessing layers that are active only in training."""

import keras

from keras_transfer.errors import unknown_name


def _seed(seed, offset):
    return None if seed is None else seed + offset


def _flip(seed):
    return [keras.layers.RandomFlip("horizontal", seed=seed)]


def _light(seed):
    return _flip(seed) + [keras.layers.RandomContrast(0.1, seed=_seed(seed, 1)),
                          keras.layers.RandomBrightness(0.1, value_range=(0, 255), seed=_seed(seed, 2))]


def _geometric(seed):
    return _light(seed) + [keras.layers.RandomRotation(0.05, seed=_seed(seed, 3)),
                           keras.layers.RandomZoom(0.1, seed=_seed(seed, 4))]


# "light" stays jit-compatible on every backend; "geometric" adds rotation and zoom, which are
# worth it on small data sets but run un-jitted under JAX (about 3x slower there).
AUGMENTATIONS = {"none": lambda seed: [], "flip": _flip, "light": _light, "geometric": _geometric}


def make_augmentation(augmentation, seed=None):
    """Resolves an augmentation argument to a `keras.Sequential` named "augmentation", or `None`.

    Args:
        augmentation: a preset name (`"none"`, `"flip"`, `"light"`, `"geometric"`), `None`,
            a list of Keras layers, or a `keras.Sequential`.
        seed: optional seed given to each preset layer.
    """
    if augmentation is None:
        return None
    if isinstance(augmentation, str):
        if augmentation not in AUGMENTATIONS:
            raise unknown_name("augmentation", augmentation, AUGMENTATIONS,
                               hint=" Or pass a list of Keras preprocessing layers.")
        layers = AUGMENTATIONS[augmentation](seed)
    elif isinstance(augmentation, keras.Sequential):
        layers = list(augmentation.layers)
    else:
        layers = list(augmentation)
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")
