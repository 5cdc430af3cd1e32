"""Recipe 3: gradual unfreezing, one more top block per stage, each stage recompiled.

    python examples/gradual_unfreezing.py path/to/images --backbone vgg16 --blocks 3
"""

import argparse

import keras_transfer as kt
from keras_transfer.models.freezing import freeze
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.presets import compile_model

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--backbone", default="vgg16")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--blocks", type=int, default=3)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(args.data_dir, image_size=size)
model = kt.build_model(spec.name, class_names=data.class_names, input_size=size,
                       weights=None if args.weights == "none" else args.weights)

# Plain Keras, step by step: every freeze() is followed by a compile.
freeze(model, "head_only")
compile_model(model, "feature_extraction")
model.fit(data.train, validation_data=data.val, epochs=args.epochs)
for k in range(1, args.blocks + 1):
    print(freeze(model, "top_blocks", n=k))
    compile_model(model, "fine_tune", learning_rate=1e-5 / k)
    model.fit(data.train, validation_data=data.val, epochs=args.epochs)
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))
