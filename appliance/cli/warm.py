"""`appliance warm`: fill a running server's caches, through `appliance.client`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from appliance.cli.base import (
    api_key_option,
    collection_option,
    open_client,
    server_url,
    settings_from,
)
from appliance.cli.params import SEARCH_MODES

# Queries per request: a long list is sent in batches the server answers in minutes at most.
BATCH = 500


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


@click.command()
@collection_option
@click.option(
    "--queries",
    "queries_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="One query per line, or JSONL with a query/text field.",
)
@click.option("--limit", "-k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--mode", type=SEARCH_MODES, default=None)
@click.option("--url", default=None, help="The running server (default: from settings).")
@api_key_option
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
    from tqdm import tqdm

    from appliance.client import ApplianceAPIError, ApplianceUnavailable

    settings = settings_from(ctx)
    name = collection or settings.default_collection
    base = server_url(settings, url)
    queries = read_queries(queries_file)
    if not queries:
        raise click.UsageError(f"{queries_file} holds no queries")
    totals = {"queries": 0, "warmed": 0, "already_cached": 0}
    failed: list[str] = []
    with open_client(base, api_key, timeout=600) as client:
        endpoint = f"{client.url}/collections/{name}/warm"
        with tqdm(total=len(queries), unit="query", desc=f"warm {name}") as bar:
            for start in range(0, len(queries), BATCH):
                batch = queries[start : start + BATCH]
                try:
                    report = client.warm(name, batch, limit=limit, mode=mode)
                except ApplianceAPIError as exc:
                    raise click.ClickException(
                        f"{endpoint}: HTTP {exc.status_code}: {exc.error}: {exc.detail}"
                    ) from exc
                except ApplianceUnavailable as exc:
                    raise click.ClickException(
                        f"no appliance answered at {endpoint} ({exc}); warming fills a running "
                        "server's caches: start it with `appliance serve`, or pass --url"
                    ) from exc
                totals["queries"] += report.queries
                totals["warmed"] += report.warmed
                totals["already_cached"] += report.already_cached
                failed.extend(report.failed)
                bar.update(len(batch))
    click.echo(
        f"{totals['queries']} queries: {totals['warmed']} warmed, "
        f"{totals['already_cached']} already cached, {len(failed)} failed"
    )
    for line in failed:
        click.echo(f"  failed: {line}", err=True)
