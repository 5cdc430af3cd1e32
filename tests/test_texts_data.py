"""Text data: tables (CSV, TSV, JSONL) and class folders of .txt; empty, whitespace-only, undecodable, unlabelled
and over-long texts handled at read time; stratified seeded splits; the tokenising tf.data pipeline and summary."""

import json

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_transfer.data.texts import load_texts, read_texts, text_dataset
from keras_transfer.errors import KerasTransferError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "plot", "very", "not"]


def _rows():
    good = [f"good film {'very ' * i}" for i in range(6)]
    bad = [f"bad plot {'not ' * i}" for i in range(6)]
    return [(t, "pos") for t in good] + [(t, "neg") for t in bad]


def _write_csv(path, rows, delimiter=","):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


@pytest.mark.backend_free
@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl", "folder"])
def test_every_source_reads_the_same_texts_and_names_what_it_skips(tmp_path, kind):
    rows = _rows() + [("   \n\t", "pos"), ("", "neg"), ("good", "")]
    if kind in ("csv", "tsv"):
        source = _write_csv(tmp_path / f"d.{kind}", rows, "\t" if kind == "tsv" else ",")
    elif kind == "jsonl":
        source = tmp_path / "d.jsonl"
        source.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in rows) + "\n")
    else:
        source = tmp_path / "folder"
        for i, (text, label) in enumerate(rows):
            if label:
                (source / label).mkdir(parents=True, exist_ok=True)
                (source / label / f"{i:02d}.txt").write_text(text)
        (source / "pos" / "latin1.txt").write_bytes("caf\xe9 good".encode("latin-1"))
    found = read_texts(source)
    assert found.class_names == ["neg", "pos"]
    assert sorted(found.of(found.paths)) == sorted(t for t, _ in _rows())
    reasons = sorted(reason for _, reason in found.skipped)
    expected = ["empty or whitespace only"] * 2 + ([] if kind == "folder" else ["no label"])
    assert reasons == sorted(expected + (["not UTF-8"] if kind == "folder" else []))


@pytest.mark.backend_free
def test_undecodable_rows_in_a_table_are_skipped_by_row(tmp_path):
    path = tmp_path / "d.csv"
    body = "text,label\ngood film,pos\nbad plot,neg\n".encode() + b"caf\xe9 film,pos\n" + b"bad,neg\n"
    path.write_bytes(body)
    found = read_texts(path)
    assert found.skipped == [("d.csv:4", "not UTF-8")] and len(found.paths) == 3


@pytest.mark.backend_free
def test_over_long_texts_are_cut_and_listed(tmp_path):
    source = _write_csv(tmp_path / "d.csv", _rows() + [("good " * 50, "pos")])
    found = read_texts(source, max_chars=40)
    assert len(found.cut) == 1 and max(len(t) for t in found.texts.values()) == 40


@pytest.mark.backend_free
def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(KerasTransferError, match=r"folder of class subfolders.*Received: source="):
        read_texts(tmp_path / "nothing.xlsx")
    source = _write_csv(tmp_path / "d.csv", _rows())
    with pytest.raises(KerasTransferError, match=r"no column review.*Received: text_column='review'"):
        read_texts(source, text_column="review")
    one = _write_csv(tmp_path / "one.csv", [("good", "pos"), ("good film", "pos")])
    with pytest.raises(KerasTransferError, match=r"at least two classes"):
        read_texts(one)
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"text": "good", "label": "pos"}\nnot json\n')
    with pytest.raises(KerasTransferError, match=r"d.jsonl:2 is not a JSON object"):
        read_texts(bad)


def test_load_texts_splits_stratified_and_seeded_and_tokenises_in_the_pipeline(tmp_path):
    source = _write_csv(tmp_path / "d.csv", _rows())
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=6)
    data = load_texts(source, preprocessor, batch_size=4, validation_split=0.34, seed=3)
    again = load_texts(source, preprocessor, batch_size=4, validation_split=0.34, seed=3)
    assert data.splits.parts == again.splits.parts
    assert data.splits.counts("val") == {"neg": 2, "pos": 2} and data.splits.counts("train") == {"neg": 4, "pos": 4}
    x, y = next(iter(data.train))
    assert x["token_ids"].shape == (4, 6) and set(np.asarray(y).tolist()) <= {0, 1}
    # "good film very very very very very": 7 words + [CLS] [SEP] = 9 tokens > 6
    truncated = sum(data.summary[s]["truncated"] for s in ("train", "val"))
    assert truncated == sum(4 + i > 6 for i in range(6)) * 2
    assert data.class_weight == {0: 1.0, 1: 1.0}
    default = load_texts(source, preprocessor, validation_split=0.34, seed=3)  # 8 training texts: batch 2
    assert [int(y.shape[0]) for _, y in default.train] == [2, 2, 2, 2]


@pytest.mark.backend_free
def test_text_dataset_tokenises_each_text_once_keeps_its_size_known_and_reshuffles_every_epoch():
    """The tokenised texts are cached: three epochs run the preprocessor over the 10 texts once, not once an
    epoch; the batch count stays known (Keras reads an epoch's steps from it); each epoch holds every text once
    with its own label, in a new order."""
    tokenised = tf.Variable(0)

    def preprocessor(x):  # a text "i" -> token id i, counting the texts it tokenises
        tokenised.assign_add(tf.shape(x)[0])
        return {"token_ids": tf.strings.to_number(x, tf.int32)[:, None]}

    ds = text_dataset([str(i) for i in range(10)], [i % 3 for i in range(10)], preprocessor, batch_size=4,
                      shuffle=True, seed=0)
    assert int(ds.cardinality()) == 3
    epochs = [[(int(t), int(label)) for x, y in ds for t, label in zip(x["token_ids"][:, 0], y)] for _ in range(3)]
    assert all(sorted(epoch) == [(i, i % 3) for i in range(10)] for epoch in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    assert int(tokenised.numpy()) == 10
