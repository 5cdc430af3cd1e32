"""Recipe 9: classify texts with a pretrained sentence encoder (all-MiniLM-L6-v2 through KerasHub), then ship a
SavedModel that takes raw strings.

    python examples/text_classifier.py texts.csv --backbone all_minilm_l6_v2 --sequence-length 64 --out exported

`texts.csv` holds `text,label` rows (a .tsv, a .jsonl of {"text", "label"} or a folder of class subfolders of .txt
files work too). The tokenizer runs in the tf.data pipeline, so `model.fit` trains on either backend; the export
puts it inside the SavedModel (load it with `import tensorflow_text` first, to register its ops).
"""

import argparse

import tensorflow as tf

from keras_transfer.data.texts import load_texts, read_texts
from keras_transfer.models.text_classifier import build_text_classifier
from keras_transfer.serving.export_text import export_text_saved_model, load_text_saved_model
from keras_transfer.training.recipes import run_recipe

parser = argparse.ArgumentParser()
parser.add_argument("source")
parser.add_argument("--backbone", default="all_minilm_l6_v2")
parser.add_argument("--sequence-length", type=int, default=64)
parser.add_argument("--out", default="exported_text")
args = parser.parse_args()

class_names = read_texts(args.source).class_names
model, preprocessor = build_text_classifier(args.backbone, class_names=class_names,
                                            sequence_length=args.sequence_length)
data = load_texts(args.source, preprocessor, batch_size=16, validation_split=0.3)
print(data.summary)
result = run_recipe(model, data.train, data.val, num_examples=len(data.splits.labels("train")), verbose=0)
print("\n".join(result.plan))
print("validation:", model.evaluate(data.val, return_dict=True, verbose=0))

difference = export_text_saved_model(model, preprocessor, args.out)
print(f"exported to {args.out}; largest difference to the Keras model {difference:.1e}")
served = load_text_saved_model(args.out)
probabilities = served.serve(tf.constant(read_texts(args.source).of(data.splits.paths("val"))[:2])).numpy()
print([class_names[i] for i in probabilities.argmax(-1)] if probabilities.shape[-1] > 1 else probabilities)
