"""`appliance ingest`: a JSONL file into a collection of the data dir."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.base import (
    backend_option,
    collection_option,
    data_dir_option,
    open_appliance,
    settings_from,
    threads_option,
)


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@collection_option
@click.option("--batch-size", default=256, show_default=True)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Skip lines that are not valid documents (bad JSON, no id or text, a repeated id, "
    "...), report them by line, and ingest the rest.",
)
@threads_option
@data_dir_option
@backend_option
@click.pass_context
def ingest(
    ctx: click.Context,
    path: Path,
    collection: str | None,
    batch_size: int,
    skip_invalid: bool,
    threads: int,
    data_dir: str | None,
    backend: str | None,
) -> None:
    """Ingest a JSONL file (id/text/metadata per line, or BEIR corpus.jsonl)."""
    from tqdm import tqdm

    from appliance.ingest.files import ingest_file
    from appliance.ingest.sources import count_lines

    settings = settings_from(
        ctx, backend, data_dir=data_dir, torch_threads=threads, runtime_threads=threads
    )
    name = collection or settings.default_collection
    appliance = open_appliance(settings)
    appliance.ensure_collection(name)
    with tqdm(total=count_lines(path), unit="doc", desc=f"ingest → {name}") as bar:
        outcome = ingest_file(
            appliance.ingest,
            name,
            path,
            batch_size=batch_size,
            skip_invalid=skip_invalid,
            progress=bar.update,
        )
    appliance.close()
    for number, why in outcome.skipped[:20]:
        click.echo(f"skipped line {number}: {why}", err=True)
    if len(outcome.skipped) > 20:
        click.echo(f"... and {len(outcome.skipped) - 20} more invalid lines", err=True)
    summary = (
        f"{outcome.upserted} documents ({outcome.embedded} embedded, {outcome.unchanged} unchanged)"
    )
    if skip_invalid:
        summary += f", {len(outcome.skipped)} invalid lines skipped"
    click.echo(summary)
