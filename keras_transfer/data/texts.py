"""Labelled texts: a CSV / TSV / JSONL table of `text,label`, or class folders of `.txt` files; checked, split
(the image splits, stratified and seeded) and loaded as `tf.data` pipelines that tokenise in TensorFlow ops.

Every text is checked once when it is read, so nothing fails mid-epoch: an empty or whitespace-only text, one
that is not UTF-8, and a row without a label are named and skipped (`LabelledTexts.skipped`); a text longer
than `max_chars` characters is cut there (`LabelledTexts.cut`), and the tokenizer truncates to the sequence
length (counted per split in the summary).
"""

import csv
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from keras_transfer.data.scan import class_folders, scan_files
from keras_transfer.data.splits import SPLITS, batch_for, class_weights, split_images
from keras_transfer.data.task_sources import TaskData, parse_targets, split_task_images, task_rows
from keras_transfer.errors import KerasTransferError
from keras_transfer.vocabulary import TEXT_TABLES

TEXT_BATCH = 16  # an encoder's batch on a CPU; BERT fine-tunes at 16-32
MAX_CHARS = 20_000  # far beyond any encoder's 512 tokens; guards memory against a runaway line


@dataclasses.dataclass
class LabelledTexts:
    """Readable texts with their labels and what was left out.

    Attributes:
        paths: one id per text (`"file.csv:12"` for row 12 of a table, the file path in a folder): what the
            splits hold, and what an error or a wrong prediction names.
        labels: int index into `class_names` per text.
        class_names: sorted class names.
        texts: `{id: text}`.
        skipped: `(id, reason)` of each text left out (empty, not UTF-8, no label; in a folder, an entry
            `data.scan` does not open: a FIFO, socket or device, a symlink out of the folder or a loop).
        cut: ids of texts cut to `max_chars` characters.
    """

    paths: list
    labels: list
    class_names: list
    texts: dict
    skipped: list = dataclasses.field(default_factory=list)
    cut: list = dataclasses.field(default_factory=list)
    source: str = ""
    kind: str = "table"
    splits: list = None  # no train/val/test layout for texts: `split_images` splits per class

    def of(self, ids):
        return [self.texts[i] for i in ids]


def read_texts(source, *, text_column="text", label_column="label", max_chars=MAX_CHARS):
    """Reads labelled texts from a table (`.csv`, `.tsv`, `.jsonl`) or a folder of class subfolders of `.txt`.

    Args:
        source: the table file or the folder.
        text_column, label_column: the table's column (JSON key) names.
        max_chars: texts longer than this are cut to it (and listed in `cut`).

    Returns:
        A `LabelledTexts`.

    Example:
    >>> found = read_texts("reviews.csv")   # text,label rows
    >>> found.class_names, len(found.paths), found.skipped[:1]
    """
    source = os.fspath(source)
    skipped = []  # `(id, reason)`: a folder's entries `data.scan` refuses come first, then the unusable texts
    if os.path.isdir(source):
        rows, kind = _folder_rows(source, skipped), "folder"
    elif os.path.isfile(source) and source.lower().endswith(TEXT_TABLES):
        rows, kind = _table_rows(source, text_column, label_column), "table"
    else:
        raise KerasTransferError(f"Text data must be a folder of class subfolders of .txt files or a table "
                                 f"({', '.join(TEXT_TABLES)}) of {text_column},{label_column}. "
                                 f"Received: source={source!r}")
    kept, cut = [], []
    for row_id, text, label in rows:
        reason = _problem(text, label)
        if reason:
            skipped.append((row_id, reason))
            continue
        if len(text) > max_chars:
            text = text[:max_chars]
            cut.append(row_id)
        kept.append((row_id, text, str(label)))
    class_names = sorted({label for _, _, label in kept})
    if len(class_names) < 2:
        raise KerasTransferError(f"Text data needs at least two classes with a usable text; found {class_names} "
                                 f"in {source} ({len(skipped)} texts skipped). Received: source={source!r}")
    index = {name: i for i, name in enumerate(class_names)}
    return LabelledTexts(paths=[r for r, _, _ in kept], labels=[index[lab] for _, _, lab in kept],
                         class_names=class_names, texts={r: t for r, t, _ in kept}, skipped=skipped, cut=cut,
                         source=source, kind=kind)


def _problem(text, label):
    if label is None or not str(label).strip():
        return "no label"
    if text is None:
        return "no text"
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # surrogate-escaped bytes: not UTF-8
        return "not UTF-8"
    if not text.strip():
        return "empty or whitespace only"
    return None


def _decode(data):
    return data.decode("utf-8-sig", errors="surrogateescape")


def _is_text_name(name):
    return name.lower().endswith(".txt")


def _folder_rows(folder, skipped):
    """`(path, text, class)` of each `.txt` file under a class folder (recursively, as image class folders are
    walked), under `data.scan`'s rule; what it refuses goes to `skipped`, named."""
    names, refused = class_folders(folder)
    skipped.extend(refused)
    for name in names:
        paths, refused, _ = scan_files(os.path.join(folder, name), _is_text_name, root=folder)
        skipped.extend(refused)
        for path in paths:
            yield _text_file(path) + (name,)


def _table_rows(path, text_column, label_column):
    base = os.path.basename(path)
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        if path.lower().endswith(".jsonl"):
            for number, line in enumerate(f, 1):
                if line.strip():
                    record = _json_record(line, f"{base}:{number}")
                    yield f"{base}:{number}", _field(record, text_column), _field(record, label_column)
            return
        reader = csv.DictReader(f, delimiter="\t" if path.lower().endswith(".tsv") else ",")
        missing = [c for c in (text_column, label_column) if c is not None and c not in (reader.fieldnames or [])]
        if missing:
            raise KerasTransferError(f"{path} has no column {', '.join(missing)}; its columns: {reader.fieldnames}. "
                                     f"Received: text_column={text_column!r}, label_column={label_column!r}")
        for number, row in enumerate(reader, 2):
            yield f"{base}:{number}", row.get(text_column), row.get(label_column) if label_column else None


def read_unlabelled_texts(inputs, *, text_column="text", max_chars=MAX_CHARS):
    """The texts to predict, in order: `.txt` files, folders of them (searched recursively), tables (`.csv`,
    `.tsv`, `.jsonl`: their `text_column`), and strings that name no file, each the text itself. A name ending in
    `.txt` or a table's extension that does not exist is an error, not a text.

    Returns:
        `(ids, texts, skipped)`: an id per text (the file path, `file:row`, or the string itself), the texts (cut
        to `max_chars`), and `(id, reason)` of each text left out (empty or whitespace only, not UTF-8).

    Example:
    >>> read_unlabelled_texts(["my invoice is wrong", "tickets.csv"])[0][:2]
    ['my invoice is wrong', 'tickets.csv:2']
    """
    ids, texts, skipped = [], [], []
    for item in inputs:
        for text_id, text in _unlabelled_rows(os.fspath(item), text_column, skipped):
            reason = _problem(text, "-")
            if reason:
                skipped.append((text_id, reason))
            else:
                ids.append(text_id)
                texts.append(text[:max_chars])
    return ids, texts, skipped


def _unlabelled_rows(item, text_column, skipped):
    if os.path.isdir(item):
        paths, refused, _ = scan_files(item, _is_text_name)  # the training folders' rule, `item` the root
        skipped.extend(refused)
        yield from map(_text_file, paths)
    elif os.path.isfile(item) and item.lower().endswith(TEXT_TABLES):
        yield from ((text_id, text) for text_id, text, _ in _table_rows(item, text_column, None))
    elif os.path.isfile(item) and item.lower().endswith(".txt"):
        yield _text_file(item)
    elif os.path.exists(item) or item.lower().endswith(TEXT_TABLES + (".txt",)):
        raise KerasTransferError(f"{item} is not a .txt file, a folder of them or a table "
                                 f"({', '.join(TEXT_TABLES)}) that exists. Received: input={item!r}")
    else:
        yield item, item


def _text_file(path):
    with open(path, "rb") as f:
        return path, _decode(f.read())


def _json_record(line, where):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise KerasTransferError(f"{where} is not a JSON object ({error.msg}); each line of a .jsonl is "
                                 f'{{"text": ..., "label": ...}}. Received: line={line[:80]!r}') from None
    return record if isinstance(record, dict) else {}


def _field(record, key):
    value = record.get(key)
    return value if value is None or isinstance(value, list) else str(value)  # a list: multi-label's labels


def text_dataset(texts, labels, preprocessor, *, batch_size=16, shuffle=False, seed=None):
    """A `tf.data` pipeline of `(preprocessor(texts), labels)` batches, each text tokenised once.

    The texts are tokenised in TF ops (in parallel, `TEXT_BATCH` at a time) on the first pass and kept in memory
    (`cache`): the preprocessor's vocabulary tables are built once a pipeline, not once an epoch's iterator.
    Shuffling and batching come after the cache, so every epoch is shuffled anew and the batches hold the same
    texts in the same order as tokenising each shuffled batch would. The batch count stays known (`unbatch`
    alone loses it, and Keras then reads the first epoch's steps from the data and the later ones run short).

    Args:
        texts: the texts, strings.
        labels: an int label per text, or a float target row (regression, multi-label).
        preprocessor: the KerasHub preprocessor (or any function of a batch of strings in TF ops).
        batch_size: texts a batch.
        shuffle: reshuffle the texts every epoch.
        seed: the shuffle's seed.

    Returns:
        A `tf.data.Dataset` of `(token dict, labels)` batches.
    """
    labels = np.asarray(labels)
    labels = labels.astype("float32" if labels.dtype.kind == "f" else "int32")  # task targets stay floats
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(list(texts), tf.string), tf.constant(labels)))
    ds = (ds.batch(TEXT_BATCH).map(lambda x, y: (preprocessor(x), y), num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch().cache().apply(tf.data.experimental.assert_cardinality(len(texts))))
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class TextData:
    """What `load_texts` returns: the pipelines, the class names, the splits and a summary."""

    train: object
    val: object
    test: object
    class_names: list
    splits: object
    found: LabelledTexts
    summary: dict
    class_weight: dict


def load_texts(source, preprocessor, *, batch_size=None, validation_split=0.2, test_split=0.0, seed=1337,
               per_class=None, text_column="text", label_column="label", max_chars=MAX_CHARS):
    """Reads, splits (stratified, seeded: `split_images`) and loads labelled texts as `tf.data` pipelines.

    Args:
        source: a table or a folder, as in `read_texts`.
        preprocessor: the KerasHub preprocessor (`build_text_classifier` returns it).
        batch_size: texts a batch; `None`: 16, at most a quarter of the training texts (`splits.batch_for`:
            an epoch of at least 4 steps, so a tiny set is not trained one step and one validation pass at a time).
        validation_split, test_split, seed, per_class: as in `load_image_folder`.
        text_column, label_column, max_chars: as in `read_texts`.

    Returns:
        A `TextData`; `summary` holds texts per class per split, token lengths and how many the tokenizer
        truncates, what was skipped and cut.
    """
    found = read_texts(source, text_column=text_column, label_column=label_column, max_chars=max_chars)
    splits = split_images(found, validation_split=validation_split, test_split=test_split, seed=seed,
                          per_class=per_class)
    batch_size = batch_for(len(splits.labels("train")), batch_size, largest=TEXT_BATCH)
    pipelines = {}
    for split in SPLITS:
        ids = splits.paths(split)
        pipelines[split] = (text_dataset(found.of(ids), splits.labels(split), preprocessor, batch_size=batch_size,
                                         shuffle=split == "train", seed=seed) if ids else None)
    return TextData(**pipelines, class_names=found.class_names, splits=splits, found=found,
                    summary=summarize_texts(found, splits, preprocessor),
                    class_weight=class_weights(splits.labels("train"), len(found.class_names)))


def summarize_texts(found, splits, preprocessor):
    """Per split: texts per class, token counts (min / median / max) and texts truncated to the sequence length."""
    length = int(preprocessor.sequence_length)
    summary = {"sequence_length": length, "skipped": found.skipped, "cut_to_max_chars": len(found.cut)}
    for split in SPLITS:
        ids = splits.paths(split)
        if not ids:
            continue
        counts = _token_counts(preprocessor.tokenizer, found.of(ids)) + 2  # [CLS] and [SEP]
        summary[split] = {"counts": splits.counts(split), "tokens_min": int(counts.min()),
                          "tokens_median": float(np.median(counts)), "tokens_max": int(counts.max()),
                          "truncated": int((counts > length).sum())}
    return summary


def _token_counts(tokenizer, texts):
    """Tokens per text (before truncation): a ragged tensor under TensorFlow, lists under JAX."""
    tokens = tokenizer(tf.constant(texts))
    if hasattr(tokens, "row_lengths"):
        return np.asarray(tokens.row_lengths())
    return np.asarray([len(t) for t in tokens])


TASK_COLUMNS = {"regression": "target", "multilabel": "labels"}  # the task manifests' own names


def read_task_texts(source, task, *, separator="|", text_column="text", max_chars=MAX_CHARS):
    """Reads a `.csv` / `.tsv` / `.jsonl` table of texts with a numeric `target` (regression) or `labels` joined by
    `separator` (multi-label; a JSON list too), as image task manifests name them. A table without a usable
    text is refused by `split_task_images` (too few to split).

    Args:
        source: the table.
        task: `"regression"` or `"multilabel"`.
        separator: the character between a row's labels.
        text_column: the text's column (JSON key).
        max_chars: texts longer than this are cut to it.

    Returns:
        `(TaskImages, {id: text})`: the rows' ids (`"file.csv:12"`), float targets and names; and the texts.

    Example:
    >>> found, texts = read_task_texts("scores.csv", "regression")  # text,target rows  # doctest: +SKIP
    """
    source = os.fspath(source)
    if not (os.path.isfile(source) and source.lower().endswith(TEXT_TABLES)):
        raise KerasTransferError(f"A {task} text run reads a table ({', '.join(TEXT_TABLES)}) of {text_column},"
                                 f"{TASK_COLUMNS[task]}. Received: data_dir={source!r}")
    column = TASK_COLUMNS[task]
    kept, skipped, texts = [], [], {}
    for row_id, text, value in _table_rows(source, text_column, column):
        reason = _problem(text, value)
        if reason:
            skipped.append((row_id, reason))
            continue
        texts[row_id] = text[:max_chars]
        kept.append((row_id, row_id, parse_targets(source, row_id, value, task, separator)))
    return task_rows(source, task, kept, [column] if task == "regression" else None, skipped), texts


def load_task_texts(source, task, preprocessor, *, batch_size=None, validation_split=0.2, test_split=0.0,
                    seed=1337, separator="|", text_column="text"):
    """`read_task_texts`, split as image task manifests are (`split_task_images`), as `tf.data` pipelines of
    `(token dict, float targets)`.

    Args:
        source, task, separator, text_column: as in `read_task_texts`.
        preprocessor: the KerasHub preprocessor.
        batch_size, validation_split, test_split, seed: as in `load_texts`.

    Returns:
        `(TaskData, {id: text})`.
    """
    found, texts = read_task_texts(source, task, separator=separator, text_column=text_column)
    parts = split_task_images(found, validation_split=validation_split, test_split=test_split, seed=seed)
    batch_size = batch_for(len(parts["train"]), batch_size, largest=TEXT_BATCH)
    sets = {split: text_dataset([texts[found.paths[i]] for i in rows], found.targets[rows], preprocessor,
                                batch_size=batch_size, shuffle=split == "train", seed=seed) if len(rows) else None
            for split, rows in parts.items()}
    return TaskData(task=task, names=found.names, found=found, parts=parts, **sets), texts
