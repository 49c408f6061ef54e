"""`appliance` command line: a module per verb group, each a thin edge over the service layer
(`appliance.service`, `appliance.operations`) or, for remote verbs, over `appliance.client`.
Verbs mirror the API: serve, ingest, search, collections, models, reindex, bench, eval,
verify, backup, restore, migrate, keys, jobs, warm."""

from __future__ import annotations

from appliance.cli import (
    bench,
    collections,
    ingest,
    jobs,
    keys,
    maintenance,
    models,
    reindex,
    search,
    serve,
    warm,
)
from appliance.cli.base import main, quiet_model_loading

for _command in (
    serve.serve,
    ingest.ingest,
    search.search,
    collections.collections,
    models.models,
    reindex.reindex,
    warm.warm,
    maintenance.verify,
    maintenance.backup,
    maintenance.restore,
    maintenance.migrate,
    maintenance.migrate_store,
    keys.keys,
    bench.bench,
    jobs.jobs,
    bench.eval_command,
):
    main.add_command(_command)

__all__ = ["main", "quiet_model_loading"]
