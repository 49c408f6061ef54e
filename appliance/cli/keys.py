"""`appliance keys create|generate|list|revoke`: API keys, through the data dir's service."""

from __future__ import annotations

import sys

import click

from appliance.cli.base import ERROR_EXIT, data_dir_option, settings_from


@click.group()
def keys() -> None:
    """API keys (scopes read < write < admin); the store keeps only their hashes."""


@keys.command("create")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), required=True)
@click.option("--label", default="", help="A note saying who or what the key is for.")
@data_dir_option
@click.pass_context
def keys_create(ctx: click.Context, scope: str, label: str, data_dir: str | None) -> None:
    """Create a key and print it once: it cannot be shown again."""
    from appliance.operations import DataDirService

    with DataDirService(settings_from(ctx, data_dir=data_dir)) as data:
        info, key = data.create_key(scope, label)
    click.echo(key)
    click.echo(
        f"created key {info.key_id} with scope {scope}; store it now, it is not shown again. "
        "Every request now needs a key (Authorization: Bearer KEY).",
        err=True,
    )


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key without storing it: content for APPLIANCE_ADMIN_KEY_FILE (a secret the
    server hashes into its store at start)."""
    from appliance.operations import generate_key

    click.echo(generate_key())


@keys.command("list")
@data_dir_option
@click.pass_context
def keys_list(ctx: click.Context, data_dir: str | None) -> None:
    """List keys: id, scope, created, revoked, label (never the key itself)."""
    from appliance.operations import DataDirService

    with DataDirService(settings_from(ctx, data_dir=data_dir)) as data:
        found = data.list_keys()
    for key in found:
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "active"
        created = key.created_at.isoformat(timespec="seconds")
        click.echo(f"{key.key_id}\t{key.scope}\t{created}\t{revoked}\t{key.label}")


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, data_dir: str | None) -> None:
    """Revoke a key by its id (as `keys list` shows it); it stops working at once."""
    from appliance.operations import DataDirService

    with DataDirService(settings_from(ctx, data_dir=data_dir)) as data:
        revoked = data.revoke_key(key_id)
    if not revoked:
        click.echo(f"error: no active key with id {key_id!r} (see `appliance keys list`)", err=True)
        sys.exit(ERROR_EXIT)
    click.echo(f"revoked {key_id}")
