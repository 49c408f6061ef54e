"""`appliance bench` (index configurations: recall, QPS, memory, build time) and `appliance
eval` (retrieval quality on BEIR qrels, or from recorded user feedback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from appliance.cli.base import (
    backend_option,
    data_dir_option,
    open_appliance,
    settings_from,
    threads_option,
)
from appliance.cli.params import SEARCH_MODES, NumberList


@click.command()
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
@click.option(
    "--ef",
    type=NumberList(int),
    default="16,32,64,128",
    show_default=True,
    help="HNSW efSearch values.",
)
@click.option(
    "--nprobe",
    type=NumberList(int),
    default="8,16,64",
    show_default=True,
    help="IVF nprobe values.",
)
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--queries", default=1000, show_default=True, type=click.IntRange(1))
@click.option(
    "--filter-selectivity",
    type=NumberList(float),
    default="",
    help="Fractions matched by filters, e.g. 0.001,0.01,0.1",
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
    ef: list[int],
    nprobe: list[int],
    k: int,
    queries: int,
    filter_selectivity: list[float],
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
    from appliance.bench import datasets, report, sweep
    from appliance.index.base import parse_index_arg
    from appliance.index.faiss_index import use_device
    from appliance.index.registry import DEFAULT_INDEX, backend_for

    if (source is None) == (synthetic is None):
        raise click.UsageError("give either a CORPUS path or --synthetic N")
    settings = settings_from(ctx, data_dir=data_dir)
    # FAISS indexes are measured where the appliance would search them (GPU or CPU).
    use_device(settings.device)
    if any(not 0 < s <= 1 for s in filter_selectivity):
        raise click.BadParameter("--filter-selectivity values must be in (0, 1]")
    configs = [parse_index_arg(text) for text in indexes] or [DEFAULT_INDEX]
    if synthetic is not None:
        dataset = datasets.synthetic_dataset(
            synthetic,
            dim,
            queries,
            seed=seed,
            store_root=settings.data_path / "bench",
            progress=not no_progress,
        )
    else:
        assert source is not None
        dataset = datasets.corpus_dataset(
            source,
            settings,
            n_queries=queries,
            split=split,
            seed=seed,
            progress=not no_progress,
        )
    options = sweep.SweepOptions(
        indexes=configs,
        efs=ef,
        nprobes=nprobe,
        k=k,
        selectivities=filter_selectivity,
        filter_queries=filter_queries,
        exact_threshold=(
            settings.exact_filter_threshold if exact_threshold is None else exact_threshold
        ),
        progress=not no_progress,
        index_cache=settings.data_path / "bench" / "indexes" / dataset.key if reuse_index else None,
        seed=seed,
        index_server=settings.index_server(),
    )
    try:
        for config in configs:
            backend_for(config).validate(config, dataset.dimension)
        points = sweep.run_sweep(dataset, options)
    finally:
        dataset.close()
    click.echo(report.points_json(points) if as_json else report.format_table(points))
    if plot is not None:
        report.plot_points(points, plot)
        click.echo(f"plot written to {plot}", err=True)


@click.command("eval")
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
@click.option("--mode", type=SEARCH_MODES, default=None)
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

    from appliance.bench.evaluate import EvalConfig, feedback_eval, run_eval
    from appliance.index.base import parse_index_arg
    from appliance.search.pipeline import SearchOptions

    settings = settings_from(
        ctx, backend, torch_threads=threads, runtime_threads=threads, data_dir=data_dir
    )
    if feedback_collection:
        click.echo(json.dumps(feedback_eval(open_appliance(settings), feedback_collection)))
        return
    if directory is None:
        raise click.UsageError("give a BEIR DIRECTORY, or --feedback COLLECTION")
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
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        click.echo(f"{key:>15}: {value}")
