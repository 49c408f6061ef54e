"""`appliance models list|verify|export|import`: the registry of installed models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from appliance.cli.base import data_dir_option, settings_from
from appliance.config import EMBEDDING_BACKENDS


@click.group()
def models() -> None:
    """The registry of installed models."""


def _registry(ctx: click.Context) -> Any:
    from appliance.service import Appliance

    return Appliance.registry_for(settings_from(ctx))


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List registered models."""
    for record in _registry(ctx).records():
        click.echo(f"{record.name}\t{record.kind}\t{record.dimension}\t{record.path}")


@models.command("verify")
@click.argument("name")
@click.pass_context
def models_verify(ctx: click.Context, name: str) -> None:
    """Check a registered model's files against their recorded sha256."""
    model = _registry(ctx).resolve(name, verify=True)
    click.echo(f"ok: {model.model_id} at {model.directory}")


@models.command("export")
@click.option("--model", "model_name", default=None, help="Model (default: the configured one).")
@click.option("--backend", type=click.Choice(EMBEDDING_BACKENDS[1:]), required=True)
@data_dir_option
@click.pass_context
def models_export(
    ctx: click.Context, model_name: str | None, backend: str, data_dir: str | None
) -> None:
    """Export a model for an onnx/openvino backend into DATA_DIR/models (else done on first use);
    an existing export is verified and reused."""
    from appliance.embedding.encoder import Encoder
    from appliance.service import Appliance

    settings = settings_from(ctx, data_dir=data_dir, model=model_name)
    model = Appliance.resolve_model(settings)
    encoder = Encoder(
        model, batch_size=8, threads=1, backend=backend, export_dir=settings.model_export_dir
    )
    click.echo(f"ok: {encoder.model_id} ({backend}) in {settings.model_export_dir}")


@models.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name to register the model under.")
@click.option("--kind", type=click.Choice(["embedding", "cross-encoder"]), default="embedding")
@click.pass_context
def models_import(ctx: click.Context, directory: Path, name: str, kind: str) -> None:
    """Register a local model directory: verify it is complete and record its sha256."""
    record = _registry(ctx).import_model(directory, name, kind=kind)
    click.echo(f"registered {record.name}: {len(record.files)} files at {record.path}")
