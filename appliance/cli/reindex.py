"""`appliance reindex`: embedding versions of a collection (switch model, list, drop)."""

from __future__ import annotations

import click

from appliance.cli.base import data_dir_option, open_appliance, settings_from, threads_option


@click.command()
@click.option("--collection", "-c", default=None, help="Collection (default: the default one).")
@click.option("--model", "-m", default=None, help="Registered embedding model to switch to.")
@click.option("--list", "list_versions", is_flag=True, help="List the collection's versions.")
@click.option("--drop", "drop_model", default=None, help="Delete a version that is not active.")
@threads_option
@data_dir_option
@click.pass_context
def reindex(
    ctx: click.Context,
    collection: str | None,
    model: str | None,
    list_versions: bool,
    drop_model: str | None,
    threads: int,
    data_dir: str | None,
) -> None:
    """Embed a collection with another model and switch to it atomically.

    Searches keep using the current version until the switch; the old version is kept, so
    `reindex --model OLD` switches back (embedding only documents changed since), and
    `--drop OLD` deletes it."""
    from tqdm import tqdm

    if sum(bool(x) for x in (model, list_versions, drop_model)) != 1:
        raise click.UsageError("give exactly one of --model, --list, --drop")
    settings = settings_from(ctx, data_dir=data_dir, torch_threads=threads, runtime_threads=threads)
    name = collection or settings.default_collection
    appliance = open_appliance(settings)
    if drop_model:
        deleted = appliance.reindex.drop(name, drop_model)
        click.echo(f"dropped {drop_model} from {name}: {deleted} vectors deleted")
    elif model:
        with tqdm(unit="doc", desc=f"reindex {name} → {model}") as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            status = appliance.reindex.run(name, model, progress)
        click.echo(f"{name}: now searching with {status.model_id}")
    for version in appliance.reindex.versions(name):
        click.echo(
            f"{version.state:>11}  {version.model_id}  {version.vectors} vectors  "
            f"{version.documents_embedded}/{version.documents_total} documents"
            + (f"  ({version.detail})" if version.detail else "")
        )
    appliance.close()
