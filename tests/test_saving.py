"""The one `.keras` loader (`models.saving.load_keras_file`): it registers every class the library defines before
Keras rebuilds a file, and names a class nobody registered as such, not as a damaged file."""

import ast
import os

import keras
import pytest

import keras_transfer
from keras_transfer.errors import DamagedFileError, KerasTransferError
from keras_transfer.models.saving import LIBRARY_MODULES, load_keras_file

PACKAGE_DIR = os.path.dirname(keras_transfer.__file__)


def _registers(path):
    """Whether a module's source decorates a class with `register_keras_serializable`."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    return any(isinstance(node, ast.ClassDef) and any("register_keras_serializable" in ast.unparse(d)
                                                      for d in node.decorator_list) for node in ast.walk(tree))


@pytest.mark.backend_free
def test_the_loader_imports_every_module_that_registers_a_class():
    found = set()
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and _registers(path):
                rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
                found.add(rel)
    assert "keras_transfer.models.pooling" in found  # the text model's layer, in a module without KerasHub
    assert found == set(LIBRARY_MODULES)


class Shifted(keras.layers.Layer):
    def call(self, x):
        return x + 1.0


def test_a_class_that_is_not_registered_is_named_not_blamed_on_the_file(tmp_path):
    registered = keras.saving.register_keras_serializable(package="test_saving")(Shifted)
    inputs = keras.Input((3,))
    keras.Model(inputs, registered()(inputs)).save(tmp_path / "m.keras")
    keras.saving.get_custom_objects().pop("test_saving>Shifted")  # as in a process that never imported it
    with pytest.raises(KerasTransferError, match="unknown layer class 'Shifted'") as caught:
        load_keras_file(tmp_path / "m.keras")
    assert not isinstance(caught.value, DamagedFileError)
    assert "not registered" in str(caught.value) and "damaged" not in str(caught.value)
