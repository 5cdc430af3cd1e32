"""Recipe 4: export a trained run's best model as a TensorFlow SavedModel and serve it.

    python examples/export_saved_model.py runs/two_phase/best.keras exported/
"""

import argparse

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.models.classifier import class_indices, get_class_names  # registers the layers load_model needs
from keras_transfer.serving.export import export_saved_model

parser = argparse.ArgumentParser()
parser.add_argument("model_path")
parser.add_argument("export_dir")
args = parser.parse_args()

model = keras.saving.load_model(args.model_path)
difference = export_saved_model(model, args.export_dir)     # checked against the model before it returns
print(f"exported to {args.export_dir}; largest difference to the Keras model: {difference:.1e}")

served = tf.saved_model.load(args.export_dir)
size = model.input_shape[1]
images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
probabilities = served.serve(tf.constant(images)).numpy()
names = get_class_names(model)
print([names[i] for i in class_indices(probabilities)] if names else class_indices(probabilities))
