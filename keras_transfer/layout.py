"""The run folder's file names, declared once: `train_from_folder` writes them, resume, evaluation,
prediction and export read them.

A run folder holds:
    config.json          the run's settings (`RunConfig`) and the environment it ran in
    class_names.json     the class names, in label order
    splits.json          which file went to which split
    data_summary.json    images per class per split, image sizes, files left out
    data_fingerprint.json  each data file's size and content hash (resume refuses changed data)
    history.csv / .json  every epoch with its phase (written after each epoch)
    history.png          their plot (with matplotlib)
    best.keras           the best model over all phases
    last.keras           the model, optimizer and training state after the last finished epoch
    state.json           a readable copy of that training state
    report.json / .txt   with a test split: `best.keras` evaluated on it
    confusion_matrix.png its confusion matrix (with matplotlib)
    preprocessor/        a text run's KerasHub preprocessor (tokenizer, sequence length): `TextClassifierPreprocessor.from_preset`
"""

CONFIG = "config.json"
CLASS_NAMES = "class_names.json"
SPLITS_FILE = "splits.json"
DATA_SUMMARY = "data_summary.json"
DATA_FINGERPRINT = "data_fingerprint.json"  # each file's size and content hash, compared on resume
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
HISTORY_PLOT = "history.png"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
STATE = "state.json"
RECIPE = "recipe.json"  # the recipe run, what it chose and why
STATE_IN_ZIP = "keras_transfer_state.json"  # the training state, inside last.keras
PHASE_BEST_GLOB = "phase_best-*.npz"  # EarlyStopping's best weights of the running phase
REPORT_JSON = "report.json"
REPORT_TXT = "report.txt"
CONFUSION_PNG = "confusion_matrix.png"
PREPROCESSOR = "preprocessor"  # a text run's KerasHub preprocessor folder
REPORT_FILES = (REPORT_JSON, REPORT_TXT, CONFUSION_PNG)

# What a run writes as it trains; `--overwrite` removes these from an old run first.
TRAINING_FILES = (HISTORY_CSV, HISTORY_JSON, BEST_MODEL, LAST_MODEL, STATE, RECIPE, HISTORY_PLOT) + REPORT_FILES

# The version of the run folder's training state (in last.keras); resume refuses another.
RUN_FORMAT = 1
