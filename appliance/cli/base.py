"""The `appliance` command group and what every verb shares: settings from the context, the
common options, and the one place an `ApplianceError` becomes a message and an exit code."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from appliance.config import EMBEDDING_BACKENDS, Settings, load_settings
from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from appliance.client import ApplianceClient
    from appliance.service import Appliance

# What a refused command exits with (click's own usage errors exit 2 as well).
ERROR_EXIT = 2


def fail(exc: ApplianceError) -> NoReturn:
    """Say what went wrong and what to fix, and exit 2: a message, never a traceback."""
    click.echo(f"error ({exc.code}): {exc.detail}", err=True)
    raise click.exceptions.Exit(ERROR_EXIT)


class ApplianceGroup(click.Group):
    """A command group whose commands raise `ApplianceError` and leave the message and the
    exit code (2) to it. A server's error answer to a remote verb reads the same; a server
    that cannot be reached exits 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from appliance.client import ApplianceAPIError, ApplianceClientError

        try:
            return super().invoke(ctx)
        except ApplianceError as exc:
            fail(exc)
        except ApplianceAPIError as exc:
            click.echo(f"error ({exc.error}): {exc.detail}", err=True)
            raise click.exceptions.Exit(ERROR_EXIT) from exc
        except ApplianceClientError as exc:
            raise click.ClickException(str(exc)) from exc


def settings_from(ctx: click.Context, backend: str | None = None, **overrides: Any) -> Settings:
    """The settings: the --config file and APPLIANCE_* variables, then the command's flags
    (None leaves a setting as configured)."""
    if backend is not None:
        # --backend wins over the configuration, per-model table included.
        overrides.update(embedding_backend=backend, embedding_backends={})
    root = ctx.find_root().ensure_object(dict)
    # --log-level (the group's) wins over the configured level, for the server's logging too.
    overrides.setdefault("log_level", root.get("log_level"))
    return load_settings(root.get("config"), **overrides)


def open_appliance(settings: Settings, *, every_collection: bool = False) -> Appliance:
    """The appliance; by default each collection is loaded when a command first uses it, so
    ingesting into one never loads (or catches up, or re-saves) the others."""
    from appliance.service import Appliance  # heavy: torch, faiss

    return Appliance(settings, open_collections=every_collection)


def open_client(url: str, api_key: str | None, *, timeout: float = 30.0) -> ApplianceClient:
    """The project's HTTP client, for the verbs that talk to a running server."""
    from appliance.client import ApplianceClient

    return ApplianceClient(url, api_key=api_key, timeout=timeout)


def server_url(settings: Settings, url: str | None) -> str:
    """--url, else the server these settings describe."""
    return (url or f"http://{settings.host}:{settings.port}").rstrip("/")


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
collection_option = click.option(
    "--collection", "-c", default=None, help="Collection (default: the default one)."
)
url_option = click.option(
    "--url",
    default=None,
    help="Talk to this running server over HTTP instead of opening the data dir.",
)
api_key_option = click.option(
    "--api-key", envvar="APPLIANCE_API_KEY", default=None, help="A key, if keys exist."
)


@click.group(cls=ApplianceGroup)
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="TOML file.")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING, ...")
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_level: str | None) -> None:
    """A fully local semantic search appliance."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    ctx.obj["log_level"] = log_level
    level = log_level or load_settings(config).log_level
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # faiss logs each CPU-specific build it tries and misses, with an exception, at INFO.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    # Alembic logs its plugins and every step at INFO; appliance.store.migration says what changed.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    quiet_model_loading()
