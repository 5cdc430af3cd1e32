"""Recipe 5: a named recipe (`auto` picks by the data), planned by steps; it prints what it chose and why.

    python examples/recipe_by_name.py path/to/images --backbone resnet50 --recipe auto
"""

import argparse

import keras_transfer as kt
from keras_transfer.models.registry import get_backbone_spec
from keras_transfer.training.recipes import RecipeOptions, RECIPES

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--backbone", default="resnet50")
parser.add_argument("--weights", default="imagenet")
parser.add_argument("--input-size", type=int, default=None)
parser.add_argument("--recipe", default="auto", choices=RECIPES)
parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the step budget)")
args = parser.parse_args()

spec = get_backbone_spec(args.backbone)
size = args.input_size or spec.default_size
data = kt.load_data(args.data_dir, image_size=size)
pretrained = args.weights != "none"
model = kt.build_model(spec.name, class_names=data.class_names, input_size=size,
                       weights=args.weights if pretrained else None)

result = kt.fit(model, data.train, data.val, recipe=args.recipe, pretrained=pretrained,
                num_examples=len(data.splits.labels("train")),
                options=RecipeOptions(head_epochs=args.epochs, fine_tune_epochs=args.epochs))
print("\n".join(result.plan))
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))
