"""The id a stored vector records as the model that made it: `name@fingerprint`, or
`name+variant@fingerprint` for a lossy backend's vectors (int8), which must never share an
index or a cache entry with the source model's. Made and parsed here only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelId:
    name: str
    fingerprint: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelId:
        """`all-MiniLM-L6-v2+int8@1a2b` -> ModelId("all-MiniLM-L6-v2", "1a2b", "int8"). A text
        without `@` is a bare model name (no fingerprint)."""
        label, at, fingerprint = text.rpartition("@")
        if not at:
            label, fingerprint = text, ""
        name, plus, variant = label.partition("+")
        return cls(name, fingerprint, variant if plus else None)

    @property
    def label(self) -> str:
        """The name with its variant, as users name a version: `all-MiniLM-L6-v2+int8`."""
        return f"{self.name}+{self.variant}" if self.variant else self.name

    def __str__(self) -> str:
        return f"{self.label}@{self.fingerprint}"
