"""Recipe 1: train only a new head on a frozen pretrained backbone, model.fit-style.

    python examples/feature_extraction.py path/to/images --backbone resnet50 --epochs 10
"""

import argparse

import keras

import keras_transfer as kt
from keras_transfer.models.freezing import freeze
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.presets import compile_model

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()

spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(args.data_dir, image_size=size, batch_size=32)

model = kt.build_model(spec.name, class_names=data.class_names, input_size=size,
                       weights=None if args.weights == "none" else args.weights)
print(freeze(model, "head_only"))          # the backbone's weights stay as they are
compile_model(model, "feature_extraction")     # Adam 1e-3, cross-entropy, accuracy
model.fit(data.train, validation_data=data.val, epochs=args.epochs,
          callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))
