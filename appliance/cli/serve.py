"""`appliance serve`: the HTTP API over a data dir, which it holds while it runs."""

from __future__ import annotations

import click

from appliance.cli.base import backend_option, data_dir_option, settings_from
from appliance.config import Settings


@click.command()
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
    from appliance.operations import serving_data_dir

    settings = settings_from(
        ctx,
        backend,
        host=host,
        port=port,
        data_dir=data_dir,
        allow_open_network=allow_open_network,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    with serving_data_dir(settings):
        run_server(settings)


def run_server(settings: Settings) -> None:
    import uvicorn

    from appliance.api.app import create_app
    from appliance.api.http_protocol import CoalescingHttpToolsProtocol

    app = create_app(settings, freeze_heap=True)
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
        http=CoalescingHttpToolsProtocol,
        loop=settings.event_loop,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        ssl_certfile=settings.ssl_certfile or None,
        ssl_keyfile=settings.ssl_keyfile or None,
    )
