"""The package's vocabularies, each declared once: what a model predicts, from what, with which loss and weights."""

TASKS = ("classification", "regression", "multilabel")  # one class; numbers; several labels
MODALITIES = ("image", "text")
LOSSES = {"regression": ("mse", "mae", "huber"), "multilabel": ("bce", "focal")}  # classification: cross-entropy
DEFAULT_LOSS = {"regression": "mse", "multilabel": "bce"}
IMAGE_WEIGHTS = ("imagenet", None)  # or the path of a weights file
TEXT_WEIGHTS = ("pretrained", None)
TEXT_TABLES = (".csv", ".tsv", ".jsonl")  # the files a text run reads, besides a folder of .txt files
