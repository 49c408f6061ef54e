"""A collection's settings, typed: how its texts become vectors (content, fixed at creation)
and how it is searched unless a request says otherwise (search defaults). The index settings
are the IndexConfig (backend, spec, build options, query defaults ef/nprobe).

The store keeps all of them as one flat JSON object beside the index backend and spec (the
format of every data dir so far); `split_options` and `joined_options` read and write it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from appliance.embedding.chunking import DEFAULT_OVERLAP, ChunkingConfig
from appliance.errors import InvalidRequest
from appliance.index.base import IndexConfig

Mode = Literal["dense", "keyword", "hybrid"]
Fusion = Literal["rrf", "weighted"]
# Bounds, declared once: the settings below and the API's request types use them, so the
# OpenAPI schema states them.
ChunkTokens = Annotated[int, Meta(ge=8, le=8_192)]
ChunkOverlap = Annotated[int, Meta(ge=0, le=4_096)]
RrfK = Annotated[int, Meta(ge=1, le=10_000)]
Alpha = Annotated[float, Meta(ge=0.0, le=1.0)]
Weight = Annotated[float, Meta(ge=0.0, le=100.0)]


class ContentSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """How texts are split before embedding; the stored vectors were made with these, so they
    are fixed at creation."""

    # Split long texts into overlapping windows of the model's tokens (false: one vector each).
    chunking: bool = True
    # Tokens per chunk, without the model's special tokens; absent: the model's own length.
    chunk_tokens: ChunkTokens | None = None
    # Tokens shared by neighbouring chunks.
    chunk_overlap: ChunkOverlap = DEFAULT_OVERLAP

    def chunking_config(self) -> ChunkingConfig:
        return ChunkingConfig(
            enabled=self.chunking, max_tokens=self.chunk_tokens, overlap=self.chunk_overlap
        )

    def check(self) -> None:
        if self.chunk_tokens is not None and self.chunk_overlap >= self.chunk_tokens:
            raise InvalidRequest(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens "
                f"({self.chunk_tokens})"
            )


class SearchDefaults(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """How the collection is searched when a request does not say; absent: the appliance's
    defaults (hybrid, weighted fusion with alpha 0.4, titles weighing 3)."""

    mode: Mode | None = None
    # Hybrid fusion: reciprocal rank fusion (rrf_k, dense_weight) or weighted normalised
    # scores (alpha = weight of the dense list).
    fusion: Fusion | None = None
    rrf_k: RrfK | None = None
    alpha: Alpha | None = None
    dense_weight: Weight | None = None
    # Keyword scoring: weight of a title match against a body match.
    title_weight: Weight | None = None
    # Rescore a lossy index's candidates (PQ, SQ) with the exact stored vectors; absent: yes.
    rescore: bool | None = None

    def merged(self, changes: SearchDefaults) -> SearchDefaults:
        """These defaults with the fields `changes` sets replaced."""
        given = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
        return msgspec.structs.replace(self, **given)


CONTENT_FIELDS: tuple[str, ...] = ContentSettings.__struct_fields__
SEARCH_FIELDS: tuple[str, ...] = SearchDefaults.__struct_fields__


class CollectionSettings(msgspec.Struct, kw_only=True, frozen=True):
    content: ContentSettings = ContentSettings()
    search: SearchDefaults = SearchDefaults()


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], CollectionSettings]:
    """The stored flat options → (the index's own options, typed content and search
    settings). Values stored by earlier releases are read as they were written."""
    index = {k: v for k, v in options.items() if k not in CONTENT_FIELDS + SEARCH_FIELDS}
    content = {k: v for k, v in options.items() if k in CONTENT_FIELDS and v is not None}
    search = {k: v for k, v in options.items() if k in SEARCH_FIELDS}
    try:
        settings = CollectionSettings(
            content=msgspec.convert(content, ContentSettings, strict=False),
            search=msgspec.convert(search, SearchDefaults, strict=False),
        )
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"collection settings: {exc}") from exc
    return index, settings


def index_part(config: IndexConfig) -> IndexConfig:
    """The configuration an index is made with: without the search defaults, which are not the
    index's (a server-side index is named after its configuration, and changing a default
    must not move it)."""
    if not any(name in config.options for name in SEARCH_FIELDS):
        return config
    options = {k: v for k, v in config.options.items() if k not in SEARCH_FIELDS}
    return IndexConfig(backend=config.backend, spec=config.spec, options=options)


def joined_options(index_options: dict[str, Any], settings: CollectionSettings) -> dict[str, Any]:
    """The flat options the store keeps: the index's own, then the content settings and search
    defaults that differ from the defaults (so a collection made without them stores what it
    always did)."""
    return {**index_options, **_changed(settings.content), **_changed(settings.search)}


def _changed(settings: msgspec.Struct) -> dict[str, Any]:
    default = type(settings)()
    return {
        name: getattr(settings, name)
        for name in settings.__struct_fields__
        if getattr(settings, name) != getattr(default, name)
    }
