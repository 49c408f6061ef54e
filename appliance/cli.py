"""`appliance` command line: verbs mirror the API (serve, ingest, search, collections, models)."""

from __future__ import annotations

import itertools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from appliance.config import Settings, load_settings
from appliance.errors import ApplianceError


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    return load_settings(ctx.obj.get("config"), **overrides)


def _open(settings: Settings) -> Any:
    from appliance.service import Appliance  # heavy: torch, faiss

    return Appliance(settings)


def _fail(exc: ApplianceError) -> None:
    click.echo(f"error ({exc.code}): {exc.detail}", err=True)
    sys.exit(2)


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), help="Data directory (default ./var)."
)


@click.group()
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="TOML file.")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING, ...")
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_level: str | None) -> None:
    """A fully local semantic search appliance."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    level = log_level or load_settings(config).log_level
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@data_dir_option
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, data_dir: str | None) -> None:
    """Serve the HTTP API (flags override APPLIANCE_HOST / _PORT / _DATA_DIR)."""
    import uvicorn

    from appliance.api.app import create_app

    settings = _settings(ctx, host=host, port=port, data_dir=data_dir)
    app = create_app(settings)
    click.echo(f"serving on http://{settings.host}:{settings.port} (data in {settings.data_dir})")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "-c", default=None, help="Collection (default: the default one).")
@click.option("--batch-size", default=256, show_default=True)
@data_dir_option
@click.pass_context
def ingest(
    ctx: click.Context, path: Path, collection: str | None, batch_size: int, data_dir: str | None
) -> None:
    """Ingest a JSONL file (id/text/metadata per line, or BEIR corpus.jsonl)."""
    from tqdm import tqdm

    from appliance.ingest.sources import count_lines, read_jsonl

    settings = _settings(ctx, data_dir=data_dir)
    name = collection or settings.default_collection
    try:
        appliance = _open(settings)
        appliance.ensure_collection(name)
        documents = read_jsonl(path)
        embedded = unchanged = 0
        with tqdm(total=count_lines(path), unit="doc", desc=f"ingest → {name}") as bar:
            while chunk := list(itertools.islice(documents, batch_size)):
                outcome = appliance.ingest.upsert(name, chunk)
                embedded += outcome.embedded
                unchanged += outcome.unchanged
                bar.update(len(chunk))
        appliance.close()
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"{embedded + unchanged} documents ({embedded} embedded, {unchanged} unchanged)")


@main.command()
@click.argument("query")
@click.option("--collection", "-c", default=None)
@click.option("--limit", "-k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--filter", "filter_json", default=None, help='JSON, e.g. \'{"lang": "en"}\'.')
@click.option("--ef", type=int, default=None, help="HNSW search breadth.")
@click.option("--nprobe", type=int, default=None, help="IVF cells to probe.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@data_dir_option
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    collection: str | None,
    limit: int,
    filter_json: str | None,
    ef: int | None,
    nprobe: int | None,
    as_json: bool,
    data_dir: str | None,
) -> None:
    """Search a collection."""
    from appliance.index.base import SearchParams

    settings = _settings(ctx, data_dir=data_dir)
    try:
        filter_spec = json.loads(filter_json) if filter_json else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--filter is not valid JSON: {exc.msg}") from exc
    try:
        appliance = _open(settings)
        params = SearchParams(ef=ef, nprobe=nprobe) if ef or nprobe else None
        outcome = appliance.search.search(
            collection or settings.default_collection,
            query,
            limit=limit,
            filter=filter_spec,
            params=params,
        )
    except ApplianceError as exc:
        _fail(exc)
    if as_json:
        payload = {
            "results": [
                {"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
                for h in outcome.results
            ],
            "took_ms": outcome.took_ms,
        }
        click.echo(json.dumps(payload, ensure_ascii=False))
        return
    for rank, hit in enumerate(outcome.results, start=1):
        snippet = " ".join(hit.text.split())[:100]
        click.echo(f"{rank:>3}. {hit.score:.4f}  {hit.id}  {snippet}")


@main.group()
def models() -> None:
    """The registry of installed models."""


@models.command("list")
def models_list() -> None:
    """List registered models."""
    from appliance.models.registry import ModelRegistry

    for record in ModelRegistry().records():
        click.echo(f"{record.name}\t{record.kind}\t{record.dimension}\t{record.path}")


@models.command("verify")
@click.argument("name")
def models_verify(name: str) -> None:
    """Check a registered model's files against their recorded sha256."""
    from appliance.models.registry import ModelRegistry

    try:
        model = ModelRegistry().resolve(name, verify=True)
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"ok: {model.model_id} at {model.directory}")


@models.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name to register the model under.")
@click.option("--kind", type=click.Choice(["embedding", "cross-encoder"]), default="embedding")
def models_import(directory: Path, name: str, kind: str) -> None:
    """Register a local model directory: verify it is complete and record its sha256."""
    from appliance.models.registry import ModelRegistry

    try:
        record = ModelRegistry().import_model(directory, name, kind=kind)  # type: ignore[arg-type]
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"registered {record.name}: {len(record.files)} files at {record.path}")


if __name__ == "__main__":
    main()
