"""OpenAI-compatible routes under /v1, so clients written for OpenAI's embeddings API point
at the appliance with a `base_url`."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from appliance.api.auth import requires_scope
from appliance.api.schemas import (
    EmbeddingOut,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingUsage,
    ModelList,
    ModelOut,
)
from appliance.embedding.openai_compat import ModelCard, wire_vectors
from appliance.service import Appliance

TRUNCATED_HEADER = "X-Truncated-Inputs"


def _model_out(card: ModelCard) -> ModelOut:
    return ModelOut(
        id=card.name,
        dimension=card.dimension,
        max_input_tokens=card.window,
        matryoshka_dimensions=list(card.matryoshka_dimensions),
    )


class OpenAIController(Controller):
    path = "/v1"
    tags = ["openai"]
    # Embeddings change nothing stored: any key.
    guards = [requires_scope("read")]

    @post(
        "/embeddings",
        status_code=200,
        sync_to_thread=True,
        response_headers=[
            ResponseHeader(
                name=TRUNCATED_HEADER,
                description="Comma-separated positions of the inputs that were longer than "
                "the model's window and truncated to it (as sentence-transformers does); "
                "absent when none was.",
                documentation_only=True,
            )
        ],
    )
    def create_embeddings(
        self, data: JSONBody[EmbeddingsRequest], appliance: NamedDependency[Appliance]
    ) -> Response[EmbeddingsResponse]:
        """Embed texts or token-id arrays with a registered model, through the embedding
        cache. 400 for more inputs, or a longer input, than the appliance's limits
        (`embeddings_max_inputs`, `embeddings_max_input_tokens`), and for `dimensions` the
        model cannot give; 404 for an unknown model."""
        result = appliance.embeddings.embed(
            data.input, model=data.model, dimensions=data.dimensions
        )
        vectors = wire_vectors(result.vectors, data.encoding_format)
        body = EmbeddingsResponse(
            data=[
                EmbeddingOut(index=index, embedding=vector) for index, vector in enumerate(vectors)
            ],
            model=result.model,
            usage=EmbeddingUsage(
                prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens
            ),
        )
        headers = (
            {TRUNCATED_HEADER: ",".join(map(str, result.truncated))} if result.truncated else {}
        )
        return Response(body, headers=headers)

    @get("/models")
    async def list_models(self, appliance: NamedDependency[Appliance]) -> ModelList:
        return ModelList(data=[_model_out(card) for card in appliance.embeddings.models()])

    @get("/models/{model:str}")
    async def get_model(
        self, model: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> ModelOut:
        return _model_out(appliance.embeddings.model(model))
