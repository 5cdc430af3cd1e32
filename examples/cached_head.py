"""Recipe 4: train a head on features the frozen backbone computes once (fast head training), model.fit-style.

    python examples/cached_head.py path/to/images --backbone resnet50 --epochs 30

While only the head trains, the backbone's output for an image never changes: compute it once, then every
epoch is a pass over small feature vectors. Needs a model without augmentation (augmented images would have
new features every epoch). Give `cache="features/"` to stream the features to disk when they outgrow memory.
"""

import argparse

import keras

import keras_transfer as kt
from keras_transfer.models.freezing import freeze
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.caching import extract_features, head_model
from keras_transfer.training.presets import compile_model

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(args.data_dir, image_size=size, batch_size=32)
model = kt.build_model(spec.name, class_names=data.class_names, input_size=size, augmentation="none",
                       weights=None if args.weights == "none" else args.weights)
freeze(model, "head_only")

train = extract_features(model, data.train, shuffle=True)     # the backbone runs once per image, here
val = extract_features(model, data.val, name="val")
print(f"cached features: train {train.features.shape}, val {val.features.shape}")

head = head_model(model)                       # features -> the model's own dropout and head layers
compile_model(head, "feature_extraction")
head.fit(train, validation_data=val, epochs=args.epochs,
         callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)])

compile_model(model, "feature_extraction")     # the full model has the trained head: evaluate it on images
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))
