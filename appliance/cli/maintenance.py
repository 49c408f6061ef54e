"""`appliance verify | backup | restore | migrate | migrate-store`: looking after a data dir
and its store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.cli.base import data_dir_option, settings_from


@click.command()
@data_dir_option
@click.pass_context
def verify(ctx: click.Context, data_dir: str | None) -> None:
    """Compare every index with the store (ids, counts, model ids, FTS rows); read-only.

    Exits 1 on any difference."""
    from appliance.verify import verify as verify_store

    report = verify_store(settings_from(ctx, data_dir=data_dir))
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
@data_dir_option
@click.pass_context
def backup(ctx: click.Context, dest: Path, data_dir: str | None) -> None:
    """Back up the data dir into DEST (new or empty); safe while a server runs on it."""
    from appliance.backup import create_backup, refuse_postgres_store

    settings = settings_from(ctx, data_dir=data_dir)
    refuse_postgres_store(settings.database_url)
    report = create_backup(settings.data_path, dest)
    click.echo(f"backup written to {dest}: {len(report.files)} files, {report.bytes} bytes")


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@data_dir_option
@click.pass_context
def restore(ctx: click.Context, src: Path, data_dir: str | None) -> None:
    """Restore a backup from SRC into the data dir; refused while a server runs on it.

    Every checksum is verified before anything is replaced; on a mismatch nothing changes.
    Exits 2 if the backup is refused or another process holds the data dir."""
    from appliance.backup import refuse_postgres_store, restore_backup

    settings = settings_from(ctx, data_dir=data_dir)
    refuse_postgres_store(settings.database_url)
    report = restore_backup(src, settings.data_path)
    click.echo(f"restored {len(report.files)} files from {src} into {settings.data_dir}")


@click.command()
@click.option(
    "--check", is_flag=True, help="Only report: exit 0 up to date, 1 upgrade pending, 2 too new."
)
@data_dir_option
@click.pass_context
def migrate(ctx: click.Context, check: bool, data_dir: str | None) -> None:
    """Upgrade the data dir's schema to this release's, after a backup of its database.

    The backup is the database as it was, beside it (appliance.sqlite3.pre-REVISION.bak).
    With --check nothing is changed: exits 0 when up to date, 1 when an upgrade is pending,
    2 when a newer release wrote the data dir."""
    from appliance.operations import schema_status, store_description, upgrade_schema

    settings = settings_from(ctx, data_dir=data_dir)
    if check:
        status = schema_status(settings)
        click.echo(f"current: {status.current_label}")
        click.echo(f"head:    {status.head}")
        if status.state == "newer":
            click.echo(
                f"error: {store_description(settings)} is at revision {status.current}, newer than "
                f"this release's {status.head}",
                err=True,
            )
        sys.exit({"current": 0, "pending": 1, "newer": 2}[status.state])
    done = upgrade_schema(settings)
    if not done.changed:
        click.echo(f"schema already at {done.to_revision}: nothing to do")
        return
    if done.created:
        click.echo(f"schema none -> {done.to_revision} (a new database)")
    elif done.stamped:
        click.echo(f"schema none (release 0.1.0, recognised by its tables) -> {done.to_revision}")
    else:
        click.echo(f"schema {done.from_revision} -> {done.to_revision}")
    if done.backup is not None:
        click.echo(f"the database as it was is kept in {done.backup}")


@click.command("migrate-store")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="DATA_DIR|URL",
    help="The store to copy: a data dir (its SQLite file) or a database URL.",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="DATA_DIR|URL",
    help="An empty store to copy into: a data dir or a postgresql+psycopg:// URL.",
)
@click.option(
    "--data-dir",
    "index_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="The data dir whose indexes `verify` compares with the target afterwards (default: "
    "the data dir of --to, else of --from).",
)
@click.pass_context
def migrate_store(ctx: click.Context, source: str, target: str, index_dir: str | None) -> None:
    """Copy a whole store into an empty one (SQLite to PostgreSQL or back), then verify it.

    Every row keeps its id and vectors are copied as stored, never re-embedded, so the data
    dir's indexes stay exact over the new store. Refused while a server holds a data dir
    involved; stop the servers on a PostgreSQL source first. Exits 1 when verify finds a
    difference, 2 when the copy is refused."""
    from typing import Any

    from appliance.operations import migrate_store as copy_between
    from appliance.operations import store_location
    from appliance.verify import verify as verify_store

    report = copy_between(source, target)
    for line in report.lines():
        click.echo(line)
    source_dir, _ = store_location(source)
    target_dir, target_store = store_location(target)
    verify_dir = index_dir or target_dir or source_dir
    overrides: dict[str, Any] = {"database_url": target_store if target_dir is None else ""}
    if verify_dir is not None:
        overrides["data_dir"] = str(verify_dir)
    checked = verify_store(settings_from(ctx, **overrides))
    for line in checked.lines():
        click.echo(line)
    if not checked.ok:
        sys.exit(1)
