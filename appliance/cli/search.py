"""`appliance search`: one query against a collection, in the data dir or on a server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import click

from appliance.cli.base import (
    api_key_option,
    data_dir_option,
    open_appliance,
    open_client,
    server_url,
    settings_from,
    url_option,
)
from appliance.cli.params import JSON_OBJECT, SEARCH_MODES


class Hit(Protocol):
    """A search hit, from the service or from the HTTP client: the fields printed."""

    @property
    def id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


@click.command()
@click.argument("query")
@click.option("--collection", "-c", default=None)
@click.option("--limit", "-k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--filter", "filter_spec", type=JSON_OBJECT, default=None, help='JSON, e.g. \'{"lang": "en"}\'.'
)
@click.option(
    "--mode",
    type=SEARCH_MODES,
    default=None,
    help="dense (vectors), keyword (BM25) or hybrid (both, fused); default: the collection's.",
)
@click.option("--ef", type=int, default=None, help="HNSW search breadth.")
@click.option("--nprobe", type=int, default=None, help="IVF cells to probe.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@data_dir_option
@url_option
@api_key_option
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    collection: str | None,
    limit: int,
    filter_spec: dict[str, Any] | None,
    mode: str | None,
    ef: int | None,
    nprobe: int | None,
    as_json: bool,
    data_dir: str | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Search a collection (the data dir's, or with --url a running server's)."""
    settings = settings_from(ctx, data_dir=data_dir)
    name = collection or settings.default_collection
    if url is not None:
        params = {k: v for k, v in (("ef", ef), ("nprobe", nprobe)) if v}
        with open_client(server_url(settings, url), api_key) as client:
            answer = client.search(
                name, query, limit=limit, filter=filter_spec, mode=mode, params=params or None
            )
        print_hits(answer.results, answer.took_ms, as_json)
        return
    from appliance.index.base import SearchParams
    from appliance.search.pipeline import SearchOptions

    appliance = open_appliance(settings)
    options = SearchOptions(
        limit=limit,
        filter=filter_spec,
        params=SearchParams(ef=ef, nprobe=nprobe) if ef or nprobe else None,
        mode=mode,  # type: ignore[arg-type]
    )
    outcome = appliance.search.search(name, query, options=options)
    print_hits(outcome.results, outcome.took_ms, as_json)


def print_hits(hits: Sequence[Hit], took_ms: float, as_json: bool) -> None:
    if as_json:
        payload = {
            "results": [
                {"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in hits
            ],
            "took_ms": took_ms,
        }
        click.echo(json.dumps(payload, ensure_ascii=False))
        return
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:100]
        click.echo(f"{rank:>3}. {hit.score:.4f}  {hit.id}  {snippet}")
