"""``sera experts stats``: which experts the routers chose, per expression type, on one split.

The figures come from evaluating the run (``sera_cli.engine.evaluation.route_split``); this
command prints the tables and draws the heat map (``sera_cli.analysis``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sera_cli.cli import options


def stats(
    checkpoint: options.Checkpoint = None,
    split: Annotated[str, typer.Option(help="Split to route (one).")] = "val",
    data: options.Data = None,
    dataset: Annotated[str | None, typer.Option(
        help="Data set under the root (default: the run's).")] = None,
    split_by: options.SplitBy = None,
    out: Annotated[Path | None, typer.Option(
        help="Heat map PNG (default: routing-<dataset>-<split>.png in the current folder).")
    ] = None,
    batch_size: options.BatchSize = 16,
    device: options.Device = "cpu",
    precision: options.Precision = "auto",
    workers: options.Workers = 0,
    skip_bad: options.SkipBad = False,
    as_json: options.Json = False,
) -> None:
    """Per expression type and expert: mean gate weight and how often it is in the top-k."""
    from sera_cli.analysis.heatmap import draw_heatmap
    from sera_cli.analysis.tables import routing_tables
    from sera_cli.cli.progress import bar, progress_factory
    from sera_cli.engine.evaluation import route_split
    from sera_cli.engine.loading import open_run
    from sera_cli.runs.folders import resolve_run

    run = open_run(resolve_run(checkpoint), device, precision=precision)
    with bar(quiet=as_json) as progress:
        result = route_split(run, split, data=data, dataset=dataset, split_by=split_by,
                             skip_bad=skip_bad, batch_size=batch_size, workers=workers,
                             progress=progress_factory(progress, "route "))
    name = result["dataset"]
    label = f"{name} {split}"
    png = draw_heatmap(result, out or Path(f"routing-{name}-{split}.png"),
                       title=f"{run.path.name}: {label} ({result['n']} samples)")
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(run.path), "dataset": name, "split": split,
                               "n": result["n"], "heatmap": str(png),
                               "routing": result["routing"],
                               "routing_entropy": result["routing_entropy"]}, indent=2))
        return
    from rich.console import Console

    console = Console()
    for table in routing_tables(result, label):
        console.print(table)
    console.print(f"heat map: {png}")
