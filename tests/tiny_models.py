"""A second, real sentence-transformers model for tests and demos: random weights, a small
dimension, the bundled model's tokenizer, written to a local directory. Nothing downloads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from appliance.models.registry import ModelRegistry


def build_tiny_model(out: Path, dimension: int = 32, seed: int = 0) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    bundled = ModelRegistry().resolve("all-MiniLM-L6-v2").directory
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        for name in (
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "special_tokens_map.json",
        ):
            shutil.copy(bundled / name, base / name)
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=30522,
            hidden_size=dimension,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=2 * dimension,
            max_position_embeddings=512,
        )
        BertModel(config).save_pretrained(base)
        transformer = models.Transformer(str(base), max_seq_length=128)
        pooling = models.Pooling(dimension, pooling_mode="mean")
        model = SentenceTransformer(
            modules=[transformer, pooling, models.Normalize()], device="cpu"
        )
        model.save(str(out))
    return out
