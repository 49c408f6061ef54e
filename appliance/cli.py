"""`appliance` command line: verbs mirror the API (serve, ingest, search, collections, models)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from appliance.config import EMBEDDING_BACKENDS, Settings, load_settings
from appliance.errors import ApplianceError


def _settings(ctx: click.Context, backend: str | None = None, **overrides: Any) -> Settings:
    if backend is not None:
        # --backend wins over the configuration, per-model table included.
        overrides.update(embedding_backend=backend, embedding_backends={})
    try:
        return load_settings(ctx.obj.get("config"), **overrides)
    except ApplianceError as exc:
        _fail(exc)


def _open(settings: Settings, *, every_collection: bool = False) -> Any:
    """The appliance; by default each collection is loaded when a command first uses it, so
    ingesting into one never loads (or catches up, or re-saves) the others."""
    from appliance.service import Appliance  # heavy: torch, faiss

    return Appliance(settings, open_collections=every_collection)


def quiet_model_loading() -> None:
    """No "Loading weights" progress bar each time a command loads a model: transformers
    draws one per load, which fills every command's output (the appliance's own bars stay).
    The variable covers a first import of huggingface_hub/transformers; the calls cover an
    earlier one (commands run in-process, as in tests)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def _fail(exc: ApplianceError) -> NoReturn:
    click.echo(f"error ({exc.code}): {exc.detail}", err=True)
    sys.exit(2)


threads_option = click.option(
    "--threads",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Torch CPU threads for embedding; 0 = every core (bulk work on an idle box).",
)
backend_option = click.option(
    "--backend",
    type=click.Choice(EMBEDDING_BACKENDS),
    default=None,
    help="Embedding backend for the configured model (default: APPLIANCE_EMBEDDING_BACKEND, "
    "then embedding_backends in the config, then torch).",
)
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
    # faiss logs each CPU-specific build it tries and misses, with an exception, at INFO.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    # Alembic logs its plugins and every step at INFO; appliance.store.migration says what changed.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    quiet_model_loading()


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@data_dir_option
@backend_option
@click.option(
    "--allow-open-network",
    is_flag=True,
    default=None,
    help="Serve beyond loopback even though no API key exists (anyone can read and write).",
)
@click.option("--ssl-certfile", default=None, help="TLS: PEM certificate (chain) to serve https.")
@click.option("--ssl-keyfile", default=None, help="TLS: the certificate's private key (PEM).")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    data_dir: str | None,
    backend: str | None,
    allow_open_network: bool | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Serve the HTTP API (flags override APPLIANCE_HOST / _PORT / _DATA_DIR).

    Holds the data dir's lock while it runs: a second server, a restore or a migration on the
    same data dir is refused until it stops."""
    from appliance.datadir_lock import hold_data_dir

    settings = _settings(
        ctx,
        backend,
        host=host,
        port=port,
        data_dir=data_dir,
        allow_open_network=allow_open_network,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    try:
        lock = hold_data_dir(settings.data_path, "`appliance serve`")
    except ApplianceError as exc:
        _fail(exc)
    try:
        _run_server(settings)
    finally:
        lock.release()


def _run_server(settings: Settings) -> None:
    import uvicorn

    from appliance.api.app import create_app

    try:
        app = create_app(settings)
    except ApplianceError as exc:
        _fail(exc)
    scheme = "https" if settings.ssl_certfile else "http"
    click.echo(
        f"serving on {scheme}://{settings.host}:{settings.port} (data in {settings.data_dir})"
    )
    # On SIGTERM uvicorn stops accepting, lets in-flight requests finish (up to the grace
    # period), then runs the app's shutdown, which saves the index snapshots.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        ssl_certfile=settings.ssl_certfile or None,
        ssl_keyfile=settings.ssl_keyfile or None,
    )


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "-c", default=None, help="Collection (default: the default one).")
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

    settings = _settings(ctx, backend, data_dir=data_dir, torch_threads=threads)
    name = collection or settings.default_collection
    try:
        appliance = _open(settings)
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
    except ApplianceError as exc:
        _fail(exc)
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


def _registry(ctx: click.Context) -> Any:
    from appliance.models.registry import ModelRegistry

    path = _settings(ctx).registry_path
    return ModelRegistry(path) if path else ModelRegistry()


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
    try:
        model = _registry(ctx).resolve(name, verify=True)
    except ApplianceError as exc:
        _fail(exc)
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

    settings = _settings(ctx, data_dir=data_dir, model=model_name)
    try:
        model = Appliance.resolve_model(settings)
        encoder = Encoder(
            model, batch_size=8, threads=1, backend=backend, export_dir=settings.model_export_dir
        )
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"ok: {encoder.model_id} ({backend}) in {settings.model_export_dir}")


@models.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name to register the model under.")
@click.option("--kind", type=click.Choice(["embedding", "cross-encoder"]), default="embedding")
@click.pass_context
def models_import(ctx: click.Context, directory: Path, name: str, kind: str) -> None:
    """Register a local model directory: verify it is complete and record its sha256."""
    try:
        record = _registry(ctx).import_model(directory, name, kind=kind)
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"registered {record.name}: {len(record.files)} files at {record.path}")


@main.command()
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
    settings = _settings(ctx, data_dir=data_dir, torch_threads=threads)
    name = collection or settings.default_collection
    try:
        appliance = _open(settings)
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
    except ApplianceError as exc:
        _fail(exc)


def read_queries(path: Path) -> list[str]:
    """One query per line: plain text, or a JSON object with "query" or "text" (BEIR
    queries.jsonl). Blank lines are skipped."""
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"line {number}: invalid JSON ({exc})") from exc
            text = record.get("query") or record.get("text")
            if not isinstance(text, str) or not text.strip():
                raise click.BadParameter(f'line {number}: needs a "query" or "text" string')
            line = text
        queries.append(line)
    return queries


def post_json(url: str, payload: dict[str, Any], api_key: str | None) -> dict[str, Any]:
    """POST JSON to the running server; errors say what the server or the network said."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{url}: HTTP {exc.code}: {exc.read().decode()[:500]}") from exc
    except urllib.error.URLError as exc:
        raise click.ClickException(
            f"no appliance answered at {url} ({exc.reason}); warming fills a running server's "
            "caches: start it with `appliance serve`, or pass --url"
        ) from exc


@main.command()
@click.option("--collection", "-c", default=None, help="Collection (default: the default one).")
@click.option(
    "--queries",
    "queries_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="One query per line, or JSONL with a query/text field.",
)
@click.option("--limit", "-k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--mode", type=click.Choice(["dense", "keyword", "hybrid"]), default=None)
@click.option("--url", default=None, help="The running server (default: from settings).")
@click.option("--api-key", envvar="APPLIANCE_API_KEY", default=None, help="A key, if keys exist.")
@click.pass_context
def warm(
    ctx: click.Context,
    collection: str | None,
    queries_file: Path,
    limit: int,
    mode: str | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Fill a running server's result and embedding caches with these queries."""
    from urllib.parse import quote

    from tqdm import tqdm

    settings = _settings(ctx)
    name = collection or settings.default_collection
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    queries = read_queries(queries_file)
    if not queries:
        raise click.UsageError(f"{queries_file} holds no queries")
    totals = {"queries": 0, "warmed": 0, "already_cached": 0}
    failed: list[str] = []
    with tqdm(total=len(queries), unit="query", desc=f"warm {name}") as bar:
        for start in range(0, len(queries), 500):
            batch = queries[start : start + 500]
            payload: dict[str, Any] = {"queries": batch, "limit": limit, "mode": mode}
            report = post_json(f"{base}/collections/{quote(name)}/warm", payload, api_key)
            for key in totals:
                totals[key] += int(report[key])
            failed.extend(report["failed"])
            bar.update(len(batch))
    click.echo(
        f"{totals['queries']} queries: {totals['warmed']} warmed, "
        f"{totals['already_cached']} already cached, {len(failed)} failed"
    )
    for line in failed:
        click.echo(f"  failed: {line}", err=True)


@main.command()
@data_dir_option
@click.pass_context
def verify(ctx: click.Context, data_dir: str | None) -> None:
    """Compare every index with the store (ids, counts, model ids, FTS rows); read-only.

    Exits 1 on any difference."""
    from appliance.verify import verify as verify_store

    report = verify_store(_settings(ctx, data_dir=data_dir))
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("dest", type=click.Path(path_type=Path))
@data_dir_option
@click.pass_context
def backup(ctx: click.Context, dest: Path, data_dir: str | None) -> None:
    """Back up the data dir into DEST (new or empty); safe while a server runs on it."""
    from appliance.backup import create_backup, refuse_postgres_store

    try:
        settings = _settings(ctx, data_dir=data_dir)
        refuse_postgres_store(settings.database_url)
        report = create_backup(settings.data_path, dest)
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"backup written to {dest}: {len(report.files)} files, {report.bytes} bytes")


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@data_dir_option
@click.pass_context
def restore(ctx: click.Context, src: Path, data_dir: str | None) -> None:
    """Restore a backup from SRC into the data dir; refused while a server runs on it.

    Every checksum is verified before anything is replaced; on a mismatch nothing changes.
    Exits 2 if the backup is refused or another process holds the data dir."""
    from appliance.backup import refuse_postgres_store, restore_backup

    settings = _settings(ctx, data_dir=data_dir)
    try:
        refuse_postgres_store(settings.database_url)
        report = restore_backup(src, settings.data_path)
    except ApplianceError as exc:
        _fail(exc)
    click.echo(f"restored {len(report.files)} files from {src} into {settings.data_dir}")


@main.command()
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
    from appliance.datadir_lock import hold_data_dir
    from appliance.store.dialect import describe
    from appliance.store.migration import MIGRATIONS

    settings = _settings(ctx, data_dir=data_dir)
    path = settings.database_location
    try:
        status = MIGRATIONS.status(path)
        if check:
            click.echo(f"current: {status.current_label}")
            click.echo(f"head:    {status.head}")
            if status.state == "newer":
                click.echo(
                    f"error: {describe(path)} is at revision {status.current}, newer than this "
                    f"release's {status.head}",
                    err=True,
                )
            sys.exit({"current": 0, "pending": 1, "newer": 2}[status.state])
        # Refused while a server (or a restore) holds the data dir, as `restore` is.
        with hold_data_dir(settings.data_path, "`appliance migrate`"):
            done = MIGRATIONS.upgrade(path)
    except ApplianceError as exc:
        _fail(exc)
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


@main.group()
def keys() -> None:
    """API keys (scopes read < write < admin); the store keeps only their hashes."""


def _key_database(ctx: click.Context, data_dir: str | None) -> Any:
    from appliance.store.database import Database

    try:
        return Database(_settings(ctx, data_dir=data_dir).database_location)
    except ApplianceError as exc:  # e.g. a data dir of a newer release
        _fail(exc)


@keys.command("create")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), required=True)
@click.option("--label", default="", help="A note saying who or what the key is for.")
@data_dir_option
@click.pass_context
def keys_create(ctx: click.Context, scope: str, label: str, data_dir: str | None) -> None:
    """Create a key and print it once: it cannot be shown again."""
    from appliance.store import keys as key_store

    db = _key_database(ctx, data_dir)
    with db.write() as session:
        row, key = key_store.create_key(session, scope, label)
        key_id = row.key_id
    db.close()
    click.echo(key)
    click.echo(
        f"created key {key_id} with scope {scope}; store it now, it is not shown again. "
        "Every request now needs a key (Authorization: Bearer KEY).",
        err=True,
    )


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key without storing it: content for APPLIANCE_ADMIN_KEY_FILE (a secret the
    server hashes into its store at start)."""
    from appliance.store import keys as key_store

    click.echo(key_store.generate_key())


@keys.command("list")
@data_dir_option
@click.pass_context
def keys_list(ctx: click.Context, data_dir: str | None) -> None:
    """List keys: id, scope, created, revoked, label (never the key itself)."""
    from appliance.store import keys as key_store

    db = _key_database(ctx, data_dir)
    with db.read() as session:
        rows = key_store.list_keys(session)
    db.close()
    for row in rows:
        revoked = row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "active"
        created = row.created_at.isoformat(timespec="seconds")
        click.echo(f"{row.key_id}\t{row.scope}\t{created}\t{revoked}\t{row.label}")


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, data_dir: str | None) -> None:
    """Revoke a key by its id (as `keys list` shows it); it stops working at once."""
    from appliance.store import keys as key_store

    db = _key_database(ctx, data_dir)
    with db.write() as session:
        revoked = key_store.revoke_key(session, key_id)
    db.close()
    if not revoked:
        click.echo(f"error: no active key with id {key_id!r} (see `appliance keys list`)", err=True)
        sys.exit(2)
    click.echo(f"revoked {key_id}")


@main.command()
@click.argument(
    "source", required=False, type=click.Path(exists=True, path_type=Path), metavar="[CORPUS]"
)
@click.option("--synthetic", type=int, default=None, help="N random clustered vectors instead.")
@click.option("--dim", type=int, default=384, show_default=True, help="Synthetic dimension.")
@click.option(
    "--index",
    "indexes",
    multiple=True,
    help="Repeatable: faiss:HNSW32,Flat, faiss:IVF1024,PQ48, hnswlib:M=32,ef_construction=200.",
)
@click.option("--ef", default="16,32,64,128", show_default=True, help="HNSW efSearch values.")
@click.option("--nprobe", default="8,16,64", show_default=True, help="IVF nprobe values.")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--queries", default=1000, show_default=True, type=click.IntRange(1))
@click.option(
    "--filter-selectivity", default="", help="Fractions matched by filters, e.g. 0.001,0.01,0.1"
)
@click.option("--filter-queries", default=200, show_default=True, type=click.IntRange(1))
@click.option(
    "--exact-threshold",
    type=int,
    default=None,
    help="Filtered searches matching at most this many are exact (default: the setting).",
)
@click.option("--reuse-index", is_flag=True, help="Keep built indexes under DATA_DIR/bench.")
@click.option("--split", default="test", show_default=True, help="BEIR qrels split.")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the points as a JSON array.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@data_dir_option
@click.pass_context
def bench(
    ctx: click.Context,
    source: Path | None,
    synthetic: int | None,
    dim: int,
    indexes: tuple[str, ...],
    ef: str,
    nprobe: str,
    k: int,
    queries: int,
    filter_selectivity: str,
    filter_queries: int,
    exact_threshold: int | None,
    reuse_index: bool,
    split: str,
    seed: int,
    as_json: bool,
    plot: Path | None,
    no_progress: bool,
    data_dir: str | None,
) -> None:
    """Sweep index configurations on a corpus (JSONL or BEIR dir) or synthetic vectors."""
    from appliance.bench import sweep
    from appliance.index.base import parse_index_arg
    from appliance.index.registry import DEFAULT_INDEX, backend_for

    def numbers(text: str, kind: type, option: str) -> list[Any]:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise click.BadParameter(f"{option} takes comma-separated numbers") from exc

    if (source is None) == (synthetic is None):
        raise click.UsageError("give either a CORPUS path or --synthetic N")
    settings = _settings(ctx, data_dir=data_dir)
    selectivities = numbers(filter_selectivity, float, "--filter-selectivity")
    if any(not 0 < s <= 1 for s in selectivities):
        raise click.BadParameter("--filter-selectivity values must be in (0, 1]")
    try:
        configs = [parse_index_arg(text) for text in indexes] or [DEFAULT_INDEX]
        if synthetic is not None:
            dataset = sweep.synthetic_dataset(
                synthetic,
                dim,
                queries,
                seed=seed,
                store_root=settings.data_path / "bench",
                progress=not no_progress,
            )
        else:
            assert source is not None
            dataset = sweep.corpus_dataset(
                source,
                settings,
                n_queries=queries,
                split=split,
                seed=seed,
                progress=not no_progress,
            )
        options = sweep.SweepOptions(
            indexes=configs,
            efs=numbers(ef, int, "--ef"),
            nprobes=numbers(nprobe, int, "--nprobe"),
            k=k,
            selectivities=selectivities,
            filter_queries=filter_queries,
            exact_threshold=(
                settings.exact_filter_threshold if exact_threshold is None else exact_threshold
            ),
            progress=not no_progress,
            index_cache=settings.data_path / "bench" / "indexes" / dataset.key
            if reuse_index
            else None,
            seed=seed,
            index_server=settings.index_server(),
        )
        try:
            for config in configs:
                backend_for(config).validate(config, dataset.dimension)
            points = sweep.run_sweep(dataset, options)
        finally:
            dataset.close()
    except ApplianceError as exc:
        _fail(exc)
    click.echo(sweep.points_json(points) if as_json else sweep.format_table(points))
    if plot is not None:
        sweep.plot_points(points, plot)
        click.echo(f"plot written to {plot}", err=True)


@main.group()
def jobs() -> None:
    """Background ingest jobs."""


@jobs.command("show")
@click.argument("job_id")
@click.option("--follow", is_flag=True, help="Show a progress bar until the job ends.")
@data_dir_option
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str, follow: bool, data_dir: str | None) -> None:
    """A job's state, progress and per-document errors (read from the data directory)."""
    import time

    from tqdm import tqdm

    from appliance.errors import JobNotFound
    from appliance.store.database import Database
    from appliance.store.schema import JobRow

    settings = _settings(ctx, data_dir=data_dir)
    db = Database(settings.database_location)

    def read() -> JobRow:
        with db.read() as session:
            job = session.get(JobRow, job_id)
        if job is None:
            _fail(JobNotFound(f"job {job_id!r} does not exist"))
        assert job is not None
        return job

    job = read()
    if follow:
        with tqdm(total=job.total, initial=job.done, unit="doc", desc=f"job {job_id[:8]}") as bar:
            while job.state not in ("succeeded", "failed"):
                time.sleep(0.5)
                job = read()
                bar.update(job.done - bar.n)
    click.echo(
        json.dumps(
            {
                "id": job.id,
                "collection": job.collection,
                "state": job.state,
                "total": job.total,
                "done": job.done,
                "embedded": job.embedded,
                "unchanged": job.unchanged,
                "errors": job.errors,
                "detail": job.detail,
            }
        )
    )


@main.command("eval")
@click.argument(
    "directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--feedback",
    "feedback_collection",
    default=None,
    help="Judge COLLECTION's "
    "served searches by recorded user feedback instead of a BEIR directory.",
)
@data_dir_option
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv")
@click.option("--mode", type=click.Choice(["dense", "keyword", "hybrid"]), default=None)
@click.option("--index", "index_arg", default=None, help="BACKEND:SPEC, e.g. faiss:Flat")
@click.option("--rerank", "rerank_dir", default=None, help="Cross-encoder dir or name.")
@click.option("--chunking", type=click.Choice(["on", "off"]), default="off", show_default=True)
@click.option("--fusion", type=click.Choice(["rrf", "weighted"]), default=None)
@click.option("--rrf-k", type=int, default=None)
@click.option("--dense-weight", type=float, default=None, help="RRF weight of dense.")
@click.option("--alpha", type=float, default=None, help="Weighted fusion: dense weight.")
@click.option("--title-weight", type=float, default=None, help="BM25 weight of titles.")
@click.option("--keep-identical-ids", is_flag=True, help="Count hits whose id equals the query id.")
@click.option("--scratch", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@threads_option
@backend_option
@click.pass_context
def eval_command(
    ctx: click.Context,
    directory: Path | None,
    feedback_collection: str | None,
    data_dir: str | None,
    split: str,
    mode: str | None,
    index_arg: str | None,
    rerank_dir: str | None,
    chunking: str,
    fusion: str | None,
    rrf_k: int | None,
    dense_weight: float | None,
    alpha: float | None,
    title_weight: float | None,
    keep_identical_ids: bool,
    scratch: Path | None,
    as_json: bool,
    threads: int,
    backend: str | None,
) -> None:
    """Evaluate retrieval quality on a BEIR directory (nDCG@10, recall@100, MRR@10)."""
    from tqdm import tqdm

    from appliance.bench.evaluate import EvalConfig, run_eval
    from appliance.index.base import parse_index_arg
    from appliance.search.pipeline import SearchOptions

    settings = _settings(ctx, backend, torch_threads=threads, data_dir=data_dir)
    if feedback_collection:
        from appliance.bench.evaluate import feedback_eval

        try:
            report = feedback_eval(_open(settings), feedback_collection)
        except ApplianceError as exc:
            _fail(exc)
        click.echo(json.dumps(report))
        return
    if directory is None:
        raise click.UsageError("give a BEIR DIRECTORY, or --feedback COLLECTION")
    try:
        config = EvalConfig(
            directory=directory,
            split=split,
            index=parse_index_arg(index_arg) if index_arg else None,
            chunking=chunking == "on",
            rerank_model=rerank_dir or "",
            ignore_identical_ids=not keep_identical_ids,
            search=SearchOptions(
                limit=100,
                mode=mode,  # type: ignore[arg-type]
                fusion=fusion,  # type: ignore[arg-type]
                rrf_k=rrf_k,
                dense_weight=dense_weight,
                alpha=alpha,
                title_weight=title_weight,
                rerank=bool(rerank_dir),
            ),
        )
        report = run_eval(
            config,
            settings,
            scratch or settings.data_path / "eval",
            progress=lambda items, total, label: iter(
                tqdm(items, total=total, desc=label, file=sys.stderr, leave=False)
            ),
        )
    except ApplianceError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        click.echo(f"{key:>15}: {value}")


def _store_argument(value: str) -> tuple[Path | None, Path | str]:
    """(the data dir, or None for a URL; where the store is) of --from / --to."""
    if "://" in value:
        return None, value
    return Path(value), Settings(data_dir=value).database_path


@main.command("migrate-store")
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
    from contextlib import ExitStack

    from appliance.datadir_lock import hold_data_dir
    from appliance.store.transfer import copy_store
    from appliance.verify import verify as verify_store

    source_dir, source_store = _store_argument(source)
    target_dir, target_store = _store_argument(target)
    try:
        with ExitStack() as held:
            for data_dir in {d for d in (source_dir, target_dir) if d is not None}:
                data_dir.mkdir(parents=True, exist_ok=True)
                held.enter_context(hold_data_dir(data_dir, "`appliance migrate-store`"))
            report = copy_store(source_store, target_store)
    except ApplianceError as exc:
        _fail(exc)
    for line in report.lines():
        click.echo(line)
    verify_dir = index_dir or target_dir or source_dir
    overrides: dict[str, Any] = {
        "database_url": target_store if target_dir is None else "",
    }
    if verify_dir is not None:
        overrides["data_dir"] = str(verify_dir)
    checked = verify_store(_settings(ctx, **overrides))
    for line in checked.lines():
        click.echo(line)
    if not checked.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
