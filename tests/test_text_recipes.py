"""The text recipes (the image recipes with AdamW and encoder rates) and the offline text demo's data and claim:
`compare` trains the pretrained MiniLM and the same architecture from random initialisation and scores both on
held-out docstrings (the test on a tiny random BERT folder; whether pretrained MiniLM wins is measured by
benchmarks/text_margin.py)."""

import collections
import math
import socket

import pytest

from conftest import tiny_bert_folder
from keras_transfer.text_demo import FAMILIES, compare, docstring_corpus, write_corpus
from keras_transfer.training.recipes import DataSize, RecipeOptions
from keras_transfer.training.recipes import TEXT_FINE_TUNE_RATE, TEXT_SCRATCH_RATE, plan_text_recipe


@pytest.mark.backend_free
def test_text_recipes_fine_tune_with_adamw_at_encoder_rates_and_one_rate_for_the_encoder():
    name, phases, why = plan_text_recipe("auto", DataSize(images=300, classes=3, batch=None))
    assert name == "lp_ft" and [p for p, _ in phases] == ["head", "fine_tune"]
    fine = phases[1][1]
    assert (fine.optimizer, fine.learning_rate, fine.layer_decay) == ("adamw", TEXT_FINE_TUNE_RATE, None)
    assert any("adamw 3e-05" in line for line in why)
    assert phases[0][1].views == 0 and not any("shifted views" in line for line in why)  # token ids do not shift
    name, phases, why = plan_text_recipe("auto", DataSize(images=300, classes=3, batch=None), pretrained=False)
    assert name == "scratch" and phases[0][1].learning_rate == TEXT_SCRATCH_RATE
    assert not any("BatchNorm included" in line for line in why)
    options = RecipeOptions(fine_tune_learning_rate=5e-5)
    assert plan_text_recipe("lp_ft", DataSize(images=300, classes=3, batch=None), options)[1][1][1].learning_rate == 5e-5


@pytest.mark.backend_free
def test_the_demo_corpus_is_real_docstrings_labelled_by_their_module_family():
    rows = docstring_corpus()
    counts = collections.Counter(label for _, label in rows)
    assert set(counts) == set(FAMILIES) and min(counts.values()) >= 100
    texts = [text for text, _ in rows]
    assert len(texts) == len(set(texts))  # each paragraph once: no text in two classes
    by_text = dict(rows)
    assert by_text[" ".join(math.sqrt.__doc__.split())] == "maths"
    assert by_text[" ".join(socket.gethostname.__doc__.split("\n\n")[-1].split())] == "network"


def test_the_demo_comparison_trains_both_encoders_and_scores_them_on_held_out_texts(tmp_path):
    """`compare`'s plumbing with its epochs cut (one a phase), on the tiny random BERT preset folder of
    `conftest.tiny_bert_folder` (loaded "pretrained", then with `weights=None`) instead of MiniLM: the same split for
    both, the "pretrained" encoder under the probe's plan, the random one under `scratch`, accuracies counted on the
    held-out texts. Whether pretrained MiniLM wins (the former slow test: +0.2 at 3 families, 4 + 4 a class) is a
    measurement: benchmarks/text_margin.py, which runs `compare` on MiniLM."""
    source = write_corpus(str(tmp_path / "docstrings.csv"), families=("maths", "network"))
    backbone = tiny_bert_folder(str(tmp_path / "tiny_bert"), [text for text, _ in docstring_corpus()])
    results = compare(source, per_class=2, val_per_class=1, test_per_class=3, sequence_length=8, seed=0,
                      batch_size=None, options=RecipeOptions(head_epochs=1, fine_tune_epochs=1), backbone=backbone)
    assert set(results) == {"pretrained", "scratch"}
    for accuracy, seconds, plan in results.values():
        assert accuracy * 6 == pytest.approx(round(accuracy * 6)) and 0 <= accuracy <= 1  # of 6 held-out texts
        assert seconds > 0 and plan
    assert any("no pretrained weights" in line for line in results["scratch"][2]), results["scratch"][2]
    assert not any("no pretrained weights" in line for line in results["pretrained"][2]), results["pretrained"][2]
