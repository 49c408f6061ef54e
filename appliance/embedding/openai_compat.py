"""Embeddings as OpenAI's `/v1/embeddings` gives them: inputs as texts or token ids, a
registered model by name, floats or base64, and what was truncated. The vectors are the ones
collections store (the same encoders, through the same embedding cache)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from appliance.embedding.cache import CachedEncoder
from appliance.embedding.encoder import Encoder
from appliance.embedding.pool import EncoderPool
from appliance.errors import DimensionsNotSupported, InvalidRequest, UnknownModel
from appliance.models.registry import ModelRecord

# What `input` may hold, as OpenAI accepts it: a text, texts, one token-id array, or several.
EmbeddingInput = str | Sequence[str | int | Sequence[int]]
EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True)
class EmbeddingLimits:
    # Inputs in one request, and tokens in one input (longer ones are refused; those that fit
    # this but not the model's window are truncated to the window).
    max_inputs: int = 2048
    max_input_tokens: int = 8192


@dataclass(frozen=True)
class ModelCard:
    name: str
    dimension: int | None
    # Tokens the model reads of one input ([CLS] and [SEP] included); None until loaded
    # where the registry does not say.
    window: int | None
    matryoshka_dimensions: tuple[int, ...] = ()


@dataclass(frozen=True)
class Embeddings:
    model: str
    vectors: np.ndarray  # (n, dimension) float32, unit length
    prompt_tokens: int
    # Positions of the inputs cut to the model's window.
    truncated: list[int]


def wire_vectors(vectors: np.ndarray, encoding_format: EncodingFormat) -> list[list[float] | str]:
    """Vectors as JSON floats, or as OpenAI's base64: each vector's little-endian float32
    bytes, base64-encoded."""
    if encoding_format == "base64":
        little = np.ascontiguousarray(vectors, dtype="<f4")
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    rows: list[list[float]] = vectors.tolist()
    return list(rows)


class EmbeddingsService:
    def __init__(
        self,
        default: Encoder,
        encoders: EncoderPool,
        cache: CachedEncoder,
        limits: EmbeddingLimits | None = None,
    ) -> None:
        self.default = default
        self.encoders = encoders
        self.cache = cache
        self.limits = limits or EmbeddingLimits()

    def _embedding_records(self) -> dict[str, ModelRecord]:
        return {r.name: r for r in self.encoders.registry.records() if r.kind == "embedding"}

    def models(self) -> list[ModelCard]:
        """The default model first, then every other registered embedding model."""
        records = self._embedding_records()
        default = records.pop(self.default.model.name, None)
        cards = [
            ModelCard(
                name=self.default.model.name,
                dimension=self.default.dimension,
                window=self.default.window,
                matryoshka_dimensions=tuple(default.matryoshka_dimensions) if default else (),
            )
        ]
        for record in records.values():
            cards.append(
                ModelCard(
                    name=record.name,
                    dimension=record.dimension,
                    window=record.max_seq_length,
                    matryoshka_dimensions=tuple(record.matryoshka_dimensions),
                )
            )
        return cards

    def model(self, name: str) -> ModelCard:
        for card in self.models():
            if card.name == name:
                return card
        raise self._unknown(name)

    def _unknown(self, name: str) -> UnknownModel:
        known = ", ".join(card.name for card in self.models())
        return UnknownModel(
            f"model {name!r} is not a registered embedding model; choose one of: {known} "
            "(GET /v1/models lists them)"
        )

    def _encoder(self, name: str | None) -> tuple[str, Encoder, ModelRecord | None]:
        records = self._embedding_records()
        if name is None or name == self.default.model.name:
            name = self.default.model.name
            return name, self.default, records.get(name)
        record = records.get(name)
        if record is None:
            raise self._unknown(name)
        return name, self.encoders.by_name(name), record

    def embed(
        self,
        inputs: EmbeddingInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
    ) -> Embeddings:
        """`model` None: the appliance's default model."""
        name, encoder, record = self._encoder(model)
        keep = _kept_dimensions(name, encoder, record, dimensions)
        texts = self._texts(inputs, encoder)
        lengths = encoder.token_lengths(texts)
        limit = self.limits.max_input_tokens
        too_long = [i for i, length in enumerate(lengths) if length > limit]
        if too_long:
            raise InvalidRequest(
                f"input[{too_long[0]}] has {lengths[too_long[0]]} tokens; an input may have at "
                f"most {limit} (inputs over the model's {encoder.window}-token window but within "
                "this limit are truncated to the window)"
            )
        vectors = self.cache.encode(texts, encoder)
        if keep is not None:
            vectors = vectors[:, :keep]
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return Embeddings(
            model=name,
            vectors=vectors,
            prompt_tokens=sum(encoder.read_tokens(length) for length in lengths),
            truncated=[i for i, length in enumerate(lengths) if length + 2 > encoder.window],
        )

    def _texts(self, inputs: EmbeddingInput, encoder: Encoder) -> list[str]:
        """The texts to embed: token-id arrays are decoded with the model's tokenizer."""
        if isinstance(inputs, str):
            items: list[str | int | Sequence[int]] = [inputs]
        else:
            items = list(inputs)
        if not items:
            raise InvalidRequest("input is empty; send a text, a list of texts or token ids")
        if all(isinstance(item, int) for item in items):
            items = [[int(item) for item in items if isinstance(item, int)]]
        if len(items) > self.limits.max_inputs:
            raise InvalidRequest(
                f"input has {len(items)} items; send at most {self.limits.max_inputs} per request"
            )
        texts = [item for item in items if isinstance(item, str)]
        if len(texts) == len(items):
            empty = next((i for i, text in enumerate(texts) if not text), None)
            if empty is not None:
                raise InvalidRequest(f"input[{empty}] is an empty string; every input needs text")
            return texts
        arrays = [item for item in items if not isinstance(item, str | int)]
        if len(arrays) == len(items):
            return [self._decoded(position, ids, encoder) for position, ids in enumerate(arrays)]
        raise InvalidRequest(
            "input mixes texts and token ids; send a string, a list of strings, a list of "
            "token ids, or a list of token-id lists"
        )

    def _decoded(self, position: int, ids: Sequence[int], encoder: Encoder) -> str:
        ids = list(ids)
        if not ids:
            raise InvalidRequest(f"input[{position}] is an empty token list")
        if len(ids) > self.limits.max_input_tokens:
            raise InvalidRequest(
                f"input[{position}] has {len(ids)} tokens; an input may have at most "
                f"{self.limits.max_input_tokens}"
            )
        vocab = encoder.vocab_size
        bad = next((token for token in ids if not 0 <= token < vocab), None)
        if bad is not None:
            raise InvalidRequest(
                f"input[{position}] holds token id {bad}; {encoder.model.name} token ids run "
                f"from 0 to {vocab - 1}"
            )
        text = encoder.decode(ids)
        if not text.strip():
            raise InvalidRequest(f"input[{position}] decodes to no text (special tokens only?)")
        return text


def _kept_dimensions(
    name: str, encoder: Encoder, record: ModelRecord | None, dimensions: int | None
) -> int | None:
    """How many leading dimensions to keep: None for the model's own size."""
    if dimensions is None or dimensions == encoder.dimension:
        return None
    allowed = (
        sorted(size for size in record.matryoshka_dimensions if size < encoder.dimension)
        if record
        else []
    )
    if dimensions in allowed:
        return dimensions
    if allowed:
        sizes = ", ".join(str(size) for size in allowed)
        can = f"it can give {sizes} or {encoder.dimension}"
    else:
        can = "it cannot shorten them (the registry lists no matryoshka_dimensions for it)"
    raise DimensionsNotSupported(
        f"dimensions {dimensions} is not supported by model {name!r}: it makes "
        f"{encoder.dimension}-dimensional vectors and {can}; leave dimensions out"
    )
