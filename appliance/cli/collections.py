"""`appliance collections list|create|show|delete`: as `GET/POST/DELETE /collections`, on the
data dir, or with --url on a running server."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click
import msgspec

from appliance.api.schemas import COLLECTION_NAME_PATTERN, PATTERN_DESCRIPTIONS
from appliance.cli.base import (
    api_key_option,
    data_dir_option,
    open_appliance,
    open_client,
    server_url,
    settings_from,
    url_option,
)
from appliance.config import Settings

INDEX_BACKENDS = ["faiss", "hnswlib", "milvus"]


class CollectionName(click.ParamType):
    """A name the API would accept for a new collection."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) > 128 or not re.fullmatch(COLLECTION_NAME_PATTERN, text):
            self.fail(PATTERN_DESCRIPTIONS[COLLECTION_NAME_PATTERN], param, ctx)
        return text


def _as_dict(summary: Any) -> dict[str, Any]:
    """A collection, from the service (a dataclass) or the client (a msgspec struct)."""
    if isinstance(summary, msgspec.Struct):
        return dict(msgspec.to_builtins(summary))
    return dict(msgspec.to_builtins(summary))


def _index_label(index: dict[str, Any]) -> str:
    options = ",".join(f"{k}={v}" for k, v in index.items() if k not in ("backend", "spec"))
    return f"{index['backend']}:{index['spec']}" + (f" ({options})" if options else "")


def _print_one(collection: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(collection, ensure_ascii=False))
        return
    for key, value in collection.items():
        shown = _index_label(value) if key == "index" else value
        click.echo(f"{key:>15}: {shown}")


def _print_list(collections: Sequence[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"collections": list(collections)}, ensure_ascii=False))
        return
    for c in collections:
        click.echo(
            f"{c['name']}\t{c['documents']}\t{c['vectors_indexed']}\t"
            f"{_index_label(c['index'])}\t{c['model_id']}"
        )


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, as the API.")


@click.group()
def collections() -> None:
    """Collections: list, create (with its index), show, delete."""


@collections.command("list")
@json_option
@data_dir_option
@url_option
@api_key_option
@click.pass_context
def collections_list(
    ctx: click.Context, as_json: bool, data_dir: str | None, url: str | None, api_key: str | None
) -> None:
    """List collections: name, documents, vectors indexed, index, model (tab-separated)."""
    settings = settings_from(ctx, data_dir=data_dir)
    if url is not None:
        with open_client(server_url(settings, url), api_key) as client:
            found = [_as_dict(c) for c in client.list_collections()]
    else:
        found = [_as_dict(c) for c in open_appliance(settings).list_collections()]
    _print_list(found, as_json)


@collections.command("create")
@click.argument("name", type=CollectionName())
@click.option(
    "--index-backend",
    type=click.Choice(INDEX_BACKENDS),
    default="hnswlib",
    show_default=True,
    help="The vector index backend.",
)
@click.option(
    "--spec",
    default=None,
    help="The backend's index description: faiss a factory string (HNSW32,Flat), hnswlib "
    "M=32,ef_construction=200, milvus HNSW | IVF_FLAT,nlist=1024 | FLAT | AUTOINDEX "
    "(default: the backend's).",
)
@click.option("--ef-construction", type=click.IntRange(1, 10_000), default=None)
@click.option(
    "--ef", type=click.IntRange(1, 10_000), default=None, help="Default HNSW search breadth."
)
@click.option(
    "--nprobe", type=click.IntRange(1, 65_536), default=None, help="Default IVF cells to probe."
)
@json_option
@data_dir_option
@url_option
@api_key_option
@click.pass_context
def collections_create(
    ctx: click.Context,
    name: str,
    index_backend: str,
    spec: str | None,
    ef_construction: int | None,
    ef: int | None,
    nprobe: int | None,
    as_json: bool,
    data_dir: str | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Create an empty collection with its index (as POST /collections)."""
    settings = settings_from(ctx, data_dir=data_dir)
    if url is not None:
        index = {
            "backend": index_backend,
            "spec": spec,
            "ef_construction": ef_construction,
            "ef": ef,
            "nprobe": nprobe,
        }
        with open_client(server_url(settings, url), api_key) as client:
            created = _as_dict(
                client.create_collection(
                    name, index={k: v for k, v in index.items() if v is not None}
                )
            )
    else:
        created = _created_here(settings, name, index_backend, spec, ef_construction, ef, nprobe)
    if as_json:
        _print_one(created, True)
        return
    click.echo(
        f"created collection {created['name']}: {_index_label(created['index'])}, "
        f"model {created['model_id']}"
    )


def _created_here(
    settings: Settings,
    name: str,
    backend: str,
    spec: str | None,
    ef_construction: int | None,
    ef: int | None,
    nprobe: int | None,
) -> dict[str, Any]:
    from appliance.service import index_config

    config = index_config(backend, spec, ef_construction=ef_construction, ef=ef, nprobe=nprobe)
    appliance = open_appliance(settings)
    appliance.create_collection(name, config)
    created = _as_dict(appliance.describe_collection(name))
    appliance.close()
    return created


@collections.command("show")
@click.argument("name")
@json_option
@data_dir_option
@url_option
@api_key_option
@click.pass_context
def collections_show(
    ctx: click.Context,
    name: str,
    as_json: bool,
    data_dir: str | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """A collection's index, model, documents, vectors indexed, index bytes and generation."""
    settings = settings_from(ctx, data_dir=data_dir)
    if url is not None:
        with open_client(server_url(settings, url), api_key) as client:
            found = _as_dict(client.get_collection(name))
    else:
        found = _as_dict(open_appliance(settings).describe_collection(name))
    _print_one(found, as_json)


@collections.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
@url_option
@api_key_option
@click.pass_context
def collections_delete(
    ctx: click.Context,
    name: str,
    yes: bool,
    data_dir: str | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Delete a collection with its documents, vectors and index (as DELETE /collections/NAME)."""
    settings = settings_from(ctx, data_dir=data_dir)
    if not yes:
        click.confirm(f"delete collection {name!r} and every document in it?", abort=True, err=True)
    if url is not None:
        with open_client(server_url(settings, url), api_key) as client:
            client.delete_collection(name)
    else:
        appliance = open_appliance(settings)
        appliance.delete_collection(name)
        appliance.close()
    click.echo(f"deleted collection {name}")
