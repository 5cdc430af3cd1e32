"""What `select` reports: each candidate's scores and serving cost, the ranked `Selection` (its table and
`selection.json`), the plot of probe score against latency and the command that trains the winner."""

import dataclasses
import logging
import os
import shlex

from keras_transfer import io
from keras_transfer.serving.plots import matplotlib_available, plot_selection
from keras_transfer.training.transferability import PROBE_METRIC

SELECTION_JSON, SELECTION_PLOT = "selection.json", "selection.png"
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Candidate:
    """One backbone's scores and serving cost (`selection.json` holds one per candidate)."""

    backbone: str
    weights: str
    input_size: int
    logme: float
    probe: float
    params: int
    ms_per_image: float
    weights_mb: float
    feature_dim: int
    features_seconds: float
    seconds: float
    pareto: bool = False
    logme_per_label: list = None  # a multi-label task's LogME of each label, in `Selection.label_names` order


@dataclasses.dataclass
class Selection:
    """The candidates ranked best first by `rank_by`, and how they were scored."""

    candidates: list
    task: str
    rank_by: str
    images: int
    views: int
    folds: int
    source: str
    seconds: float
    command: str
    modality: str = "image"
    label_names: list = None  # a multi-label task's labels

    @property
    def best(self):
        return self.candidates[0]

    def to_dict(self):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "candidates"}
        return dict(fields, probe_metric=PROBE_METRIC[self.task],
                    candidates=[dataclasses.asdict(c) for c in self.candidates])

    def table(self):
        """The ranking as a text table (`*`: on the Pareto front of probe score against latency)."""
        unit, size = ("text", "tokens") if self.modality == "text" else ("image", "size")
        rows = [("rank", "backbone", "LogME", f"probe {PROBE_METRIC[self.task]}", f"ms/{unit}", "params", size,
                 "weights MB", "seconds")]
        for rank, c in enumerate(self.candidates, 1):
            rows.append((f"{rank}{'*' if c.pareto else ''}", c.backbone, f"{c.logme:.4f}", f"{c.probe:.3f}",
                         f"{c.ms_per_image:.1f}", f"{c.params / 1e6:.2f}M", str(c.input_size), f"{c.weights_mb:.1f}",
                         f"{c.seconds:.1f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        for c in self.candidates if self.task == "multilabel" else ():
            names = self.label_names or [f"label {i}" for i in range(len(c.logme_per_label))]
            lines.append(f"LogME per label, {c.backbone}: "
                         + ", ".join(f"{name} {value:.4f}" for name, value in zip(names, c.logme_per_label)))
        return "\n".join(lines + [
            f"Ranked by {self.rank_by} on {self.images} {unit}s ({self.task}; probe: {self.folds}-fold"
            + (f", {self.views} shifted views of each training image" if self.modality == "image" else "")
            + f"); * = Pareto front of probe score against latency; {self.seconds:.1f} s in all.",
            f"Train the winner: {self.command}"])


def train_command(data, best, task, input_size, *, modality="image", sequence_length=None):
    """The `keras-transfer train` command line that trains `best` on `data` with the default recipe."""
    parts = ["keras-transfer", "train", shlex.quote(os.fspath(data))]
    if modality == "text":
        parts += ["--modality", "text"]
    parts += ["--backbone", shlex.quote(best.backbone)]
    if best.weights not in ("imagenet", "pretrained"):
        parts += ["--weights", shlex.quote(best.weights)]
    if input_size is not None:
        parts += ["--input-size", str(input_size)]
    if sequence_length is not None:
        parts += ["--sequence-length", str(sequence_length)]
    if task != "classification":
        parts += ["--task", task]
    run_name = os.path.basename(os.path.normpath(best.backbone))
    return " ".join(parts + ["--out", shlex.quote(os.path.join("runs", run_name))])


def write_selection(selection, out):
    """Writes `selection.json` and, with matplotlib, `selection.png` into `out`; returns the paths written."""
    os.makedirs(out, exist_ok=True)
    written = [os.path.join(out, SELECTION_JSON)]
    io.write_json(written[0], selection.to_dict())
    if matplotlib_available():
        c = selection.candidates
        written.append(plot_selection([x.backbone for x in c], [x.probe for x in c], [x.ms_per_image for x in c],
                                      os.path.join(out, SELECTION_PLOT),
                                      score_label=f"cross-validated probe {PROBE_METRIC[selection.task]}"))
    else:
        log.warning("No plot: matplotlib is not installed (pip install \"keras-transfer[plots]\").")
    return written
