"""`appliance jobs show`: a background ingest job, as the data dir records it."""

from __future__ import annotations

import json
import time

import click

from appliance.cli.base import data_dir_option, settings_from


@click.group()
def jobs() -> None:
    """Background ingest jobs."""


@jobs.command("show")
@click.argument("job_id")
@click.option("--follow", is_flag=True, help="Show a progress bar until the job ends.")
@data_dir_option
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str, follow: bool, data_dir: str | None) -> None:
    """A job's state, progress and per-document errors (read from the data directory)."""
    from tqdm import tqdm

    from appliance.operations import DataDirService

    with DataDirService(settings_from(ctx, data_dir=data_dir)) as data:
        job = data.job(job_id)
        if follow:
            with tqdm(
                total=job.total, initial=job.done, unit="doc", desc=f"job {job_id[:8]}"
            ) as bar:
                while job.state not in ("succeeded", "failed"):
                    time.sleep(0.5)
                    job = data.job(job_id)
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
