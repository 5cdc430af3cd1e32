"""Training history: per-epoch rows (with their phase) as columns, `history.json` and `history.csv`."""

import json
import os

from keras_transfer import io
from keras_transfer.layout import HISTORY_CSV, HISTORY_JSON


def history_columns(rows):
    """`{"phase": [...], "epoch": [...], metric: [...]}` from per-epoch rows."""
    keys = ["phase", "epoch"] + sorted({k for row in rows for k in row} - {"phase", "epoch"})
    return {key: [row.get(key) for row in rows] for key in keys}


def write_history(folder, rows):
    """Writes `history.json` (columns) and `history.csv` (one row per epoch), each atomically."""
    columns = history_columns(rows)
    io.write_text(os.path.join(folder, HISTORY_JSON), json.dumps(columns, indent=2))
    keys = ["epoch", "phase"] + list(columns)[2:]
    lines = [",".join(keys)] + [",".join("" if row.get(k) is None else str(row[k]) for k in keys) for row in rows]
    io.write_text(os.path.join(folder, HISTORY_CSV), "\n".join(lines) + "\n")
