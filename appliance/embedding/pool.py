"""Loaded embedding models by model id: the default one, and others on first use.

A collection records the model id (`name@fingerprint`) its vectors were made with; queries and
writes of that collection must use the same model, so they ask the pool for it. Models other
than the default are loaded from the registry only when a collection needs them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from appliance.embedding.backends import backend_for_variant
from appliance.embedding.encoder import Encoder
from appliance.errors import ModelIntegrityError, ModelNotFound
from appliance.models.model_id import ModelId
from appliance.models.registry import LocalModel, ModelRegistry


class EncoderPool:
    def __init__(
        self,
        registry: ModelRegistry,
        load: Callable[[LocalModel, str | None], Encoder],
        *,
        verify: bool = True,
    ) -> None:
        self.registry = registry
        self._load = load
        self._verify = verify
        self._encoders: dict[str, Encoder] = {}
        self._lock = threading.Lock()

    def add(self, encoder: Encoder) -> None:
        """An encoder loaded elsewhere (the default model, loaded at start-up)."""
        with self._lock:
            self._encoders[encoder.model_id] = encoder

    def loaded(self) -> list[Encoder]:
        return list(self._encoders.values())

    def loaded_encoder(self, model_id: str) -> Encoder | None:
        """The encoder of `model_id` if it is loaded already (never loads one)."""
        return self._encoders.get(model_id)

    def get(self, model_id: str) -> Encoder:
        """The encoder whose vectors carry `model_id`; loaded once, then shared."""
        encoder = self._encoders.get(model_id)
        if encoder is not None:
            return encoder
        # A lossy variant (`name+int8@...`) is the named model run by the backend that makes
        # that variant; its fingerprint is checked by the encoder's own id below.
        parsed = ModelId.parse(model_id)
        name, variant = parsed.name, parsed.variant
        with self._lock:
            if model_id in self._encoders:
                return self._encoders[model_id]
            model = self.resolve(name)
            if variant:
                encoder = self._load(model, backend_for_variant(variant))
                if encoder.model_id != model_id:
                    raise ModelIntegrityError(
                        f"vectors were made by {model_id}, but {name!r} with its {variant} "
                        f"backend now makes {encoder.model_id}: restore the original files, "
                        f"or reindex the collection with another model"
                    )
                self._encoders[model_id] = encoder
                return encoder
            if model.fingerprint != parsed.fingerprint:
                raise ModelIntegrityError(
                    f"vectors were made by {model_id}, but model {name!r} now has files with "
                    f"fingerprint {model.fingerprint}: restore the original files, or reindex "
                    f"the collection with `appliance reindex --collection C --model {name}`"
                )
            encoder = self._load(model, None)
            self._encoders[model_id] = encoder
            return encoder

    def resolve(self, name: str) -> LocalModel:
        """A registered embedding model by name. Collections only use registered models, so a
        restart finds the same files again."""
        if self.registry.get(name) is None:
            known = ", ".join(r.name for r in self.registry.records() if r.kind == "embedding")
            raise ModelNotFound(
                f"embedding model {name!r} is not registered (registered: {known or 'none'}); "
                "add it with `appliance models import DIR --name NAME`"
            )
        return self.registry.resolve(name, verify=self._verify, kind="embedding")

    def by_name(self, name: str) -> Encoder:
        return self.get(self.resolve(name).model_id)
