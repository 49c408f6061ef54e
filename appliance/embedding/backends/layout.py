"""What a sentence-transformers directory says about pooling, normalisation and sequence
length, read from its own files so an exported graph embeds exactly as torch does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from appliance.errors import InvalidConfig

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


@dataclass(frozen=True)
class ModelLayout:
    directory: Path
    dimension: int
    max_seq_length: int
    normalize: bool

    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer cutting at the sentence-transformers sequence length and
        padding to the longest text of a batch (tokenizer.json ships fixed 128 padding)."""
        tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        return tokenizer


def read_layout(directory: Path) -> ModelLayout:
    """Mean pooling (+ optional Normalize) over a Transformer: anything else is refused, since
    an exported backend would silently embed differently from sentence-transformers."""
    modules = json.loads((directory / "modules.json").read_text())
    types = [module["type"] for module in modules]
    if types[:2] != [_TRANSFORMER, _POOLING] or any(t != _NORMALIZE for t in types[2:]):
        raise InvalidConfig(
            f"model at {directory} has modules {types}; exported backends support "
            "Transformer + mean Pooling (+ Normalize) only: use backend 'torch'"
        )
    pooling_dir = directory / modules[1]["path"]
    pooling = json.loads((pooling_dir / "config.json").read_text())
    modes = [key for key, value in pooling.items() if key.startswith("pooling_mode") and value]
    if modes != ["pooling_mode_mean_tokens"]:
        raise InvalidConfig(
            f"model at {directory} pools with {modes}; exported backends support mean pooling "
            "only: use backend 'torch'"
        )
    if not (directory / "tokenizer.json").is_file():
        raise InvalidConfig(f"model at {directory} has no tokenizer.json (a fast tokenizer)")
    st_config_file = directory / "sentence_bert_config.json"
    st_config = json.loads(st_config_file.read_text()) if st_config_file.is_file() else {}
    max_seq_length = st_config.get("max_seq_length")
    if not max_seq_length:
        config = json.loads((directory / "config.json").read_text())
        max_seq_length = config.get("max_position_embeddings", 512)
    return ModelLayout(
        directory=directory,
        dimension=int(pooling["word_embedding_dimension"]),
        max_seq_length=int(max_seq_length),
        normalize=_NORMALIZE in types,
    )
