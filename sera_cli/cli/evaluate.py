"""``sera eval``: score a run on one or more data sets and splits, as the literature reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sera_cli.cli import options


def evaluate(
    checkpoint: options.Checkpoint = None,
    data: options.Data = None,
    dataset: Annotated[str | None, typer.Option(
        help="Data sets, comma-separated (refcoco,refcoco+,refcocog); default: the run's.")
    ] = None,
    split_by: options.SplitBy = None,
    split: Annotated[str | None, typer.Option(
        help="Splits, comma-separated (default: every split but train).")] = None,
    threshold: options.Threshold = None,
    batch_size: options.BatchSize = 16,
    device: options.Device = "cpu",
    precision: options.Precision = "auto",
    workers: options.Workers = 0,
    save_masks: Annotated[Path | None, typer.Option(
        help="Write DIR/{split}/{ref_id}_{sent_id}.png.")] = None,
    skip_bad: options.SkipBad = False,
    protocol: Annotated[str, typer.Option(
        help="Scoring protocol: sera, cris (CRIS/DETRIS), lavt, rela (gRefCOCO: gIoU, cIoU, "
             "N-acc, T-acc); docs/metrics.md.")] = "sera",
    as_json: options.Json = False,
) -> None:
    """Evaluate a run: mIoU, oIoU, Prec@X per split (or the figures of another protocol), and
    how the routers used their experts."""
    from sera_cli.analysis.metrics import protocol_named
    from sera_cli.cli.progress import bar, progress_factory
    from sera_cli.engine.evaluation import evaluate_plan, plan_eval
    from sera_cli.engine.loading import open_run
    from sera_cli.errors import SeraError
    from sera_cli.runs.folders import resolve_run

    protocol_named(protocol)  # a misspelt protocol fails before the model loads
    splits = None if split is None else [s.strip() for s in split.split(",") if s.strip()]
    if splits == []:
        raise SeraError(f"--split {split!r} names no split; give names such as val,testA")
    if save_masks is not None:  # before the model load: a bad folder fails at once
        try:
            save_masks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeraError(f"--save-masks: cannot create the folder {save_masks}: "
                            f"{exc.strerror or exc}") from None
    run = open_run(resolve_run(checkpoint), device, threshold, precision=precision)
    plan = plan_eval(run, data, dataset, split_by, splits, skip_bad)
    for name, counts in plan.skipped.items():
        typer.echo(f"{name}: left out {sum(counts.values())} bad refs (--skip-bad): "
                   + ", ".join(f"{k} {v}" for k, v in counts.items()), err=True)
    with bar(quiet=as_json) as progress:
        results = evaluate_plan(run, plan, batch_size=batch_size, workers=workers,
                                save_masks=save_masks, progress=progress_factory(progress),
                                protocol=protocol)
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(run.path), "threshold": run.threshold,
                               "protocol": protocol, "results": results}, indent=2))
        return
    print_results(results, run.threshold, str(run.path), protocol)


def print_results(results: list[dict[str, Any]], threshold: float, run: str,
                  protocol: str = "sera") -> None:
    from rich.console import Console

    from sera_cli.analysis.tables import results_table, routing_tables

    console = Console()
    console.print(results_table(results, f"{run} (threshold {threshold}, protocol {protocol})"))
    for r in results:
        for routing in routing_tables(r, f"{r['dataset']} {r['split']}"):
            console.print(routing)
