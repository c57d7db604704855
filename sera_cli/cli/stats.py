"""``sera experts stats``: which experts the routers chose, per expression type, on one split.

The figures come from evaluating the run (``sera_cli.evaluate``); this command only picks the
run and the data as ``sera eval`` does, then prints the tables and draws the heat map
(``sera_cli.routing_stats``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

O = typer.Option  # noqa: E741


def stats(
    checkpoint: Annotated[Path | None, O(help="Run folder (default: the latest run).")] = None,
    split: Annotated[str, O(help="Split to route (one).")] = "val",
    data: Annotated[Path | None, O(help="Data root (default: the run's own data).")] = None,
    dataset: Annotated[str | None, O(help="Data set under the root (default: the run's).")
                       ] = None,
    split_by: Annotated[str | None, O(help="refs file: unc, umd, google (default: the data "
                                           "set's own).")] = None,
    out: Annotated[Path | None, O(help="Heat map PNG (default: routing-<dataset>-<split>.png "
                                       "in the current folder).")] = None,
    batch_size: Annotated[int, O(min=1, help="Samples per forward pass.")] = 16,
    device: Annotated[str, O(help="cpu or cuda.")] = "cpu",
    workers: Annotated[int, O(min=0, help="Data-loading worker processes.")] = 0,
    skip_bad: Annotated[bool, O("--skip-bad", help="Leave out broken data entries.")] = False,
    as_json: Annotated[bool, O("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Per expression type and expert: mean gate weight and how often it is in the top-k."""
    from sera_cli.cli.evaluate import run_data, split_dataset
    from sera_cli.cli.progress import bar
    from sera_cli.data.refer import ReferIndex
    from sera_cli.errors import SeraError
    from sera_cli.evaluate import evaluate
    from sera_cli.predict import Predictor
    from sera_cli.routing_stats import draw_heatmap, routing_tables
    from sera_cli.runs import resolve_run

    run = resolve_run(checkpoint)
    predictor = Predictor(run, device=device)
    root, names = run_data(predictor.config, data, dataset)
    if len(names) != 1:
        raise SeraError(f"--dataset names {len(names)} data sets ({', '.join(names)}); "
                        "routing statistics are per data set: give one")
    index = ReferIndex.load(root, names[0], split_by, skip_bad=skip_bad)
    ds = split_dataset(predictor.model, index, split)
    with bar(quiet=as_json) as progress:
        task = progress.add_task(f"route {names[0]} {split}", total=len(ds), info="")
        result = evaluate(predictor.model, ds, batch_size=batch_size, device=device,
                          workers=workers, on_batch=lambda n: progress.advance(task, n))
    if not result["routing"]:
        raise SeraError(f"{run} has no routed experts (trained with --experts '' and no adapter "
                        "experts): there is nothing to analyse")
    label = f"{names[0]} {split}"
    png = draw_heatmap(result, out or Path(f"routing-{names[0]}-{split}.png"),
                       title=f"{run.name}: {label} ({result['n']} samples)")
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(run), "dataset": names[0], "split": split,
                               "n": result["n"], "heatmap": str(png),
                               "routing": result["routing"]}, indent=2))
        return
    from rich.console import Console

    console = Console()
    for table in routing_tables(result, label):
        console.print(table)
    console.print(f"heat map: {png}")
