"""`sera data ...`: write the synthetic data set, check a data set in the `refer` layout.

This layer parses options and prints; the work is in `sera_cli.data`. Those modules are imported
inside the commands so that `sera --help` does not pay for numpy, Pillow or pycocotools.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sera_cli.errors import SeraError

app = typer.Typer(
    help="Data sets in the `refer` layout (RefCOCO, RefCOCO+, RefCOCOg): synthesize, check.",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Data root to write into.")],
    images: Annotated[
        int,
        typer.Option(
            "--images", min=4, help="Images in all, split 6:1:1:1 (train:val:testA:testB)."
        ),
    ] = 900,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 0,
    name: Annotated[str | None, typer.Option(
        "--name", help="Dataset folder name under --out (default: synth; grefcoco with "
                       "--generalized).")] = None,
    generalized: Annotated[bool, typer.Option(
        "--generalized", help="gRefCOCO layout, with expressions naming several objects or "
                              "none.")] = False,
    domain: Annotated[str, typer.Option(
        "--domain", help="all; or source / target: two shifted tasks for transfer with "
                         "--init-from (docs/ablation.md).")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write a synthetic data set of coloured shapes with tagged referring expressions."""
    from rich.progress import Progress

    from sera_cli.data.synth import synthesize

    start = time.perf_counter()
    with Progress(console=_err, transient=True) as bar:
        task = bar.add_task("synthesizing", total=images)
        summary = synthesize(
            out,
            images,
            seed,
            name=name,
            progress=lambda done, total: bar.update(task, completed=done),
            generalized=generalized,
            domain=domain,
        )
    seconds = time.perf_counter() - start
    if as_json:
        typer.echo(json.dumps({**asdict(summary), "seconds": round(seconds, 2)}))
        return
    table = Table(title=f"{summary.dataset} in {summary.root}")
    for column in ("split", "images", "refs", "sentences"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, n in summary.images.items():
        table.add_row(split, str(n), str(summary.refs[split]), str(summary.sentences[split]))
    _out.print(table)
    types = ", ".join(f"{k} {v}" for k, v in summary.types.items())
    _out.print(f"Expression types: {types}")
    _out.print(
        f"Wrote {sum(summary.images.values())} images to {summary.root} in {seconds:.1f} s; "
        f"read it with --data {summary.root} --dataset {summary.dataset}"
    )


@app.command()
def check(
    data: Annotated[Path, typer.Argument(help="Data root (holds {dataset}/ and images/).")],
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="refcoco, refcoco+, refcocog, synth...; default: the only one."
        ),
    ] = None,
    split_by: Annotated[
        str | None, typer.Option("--split-by", help="unc, umd or google; default per dataset.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Count refs, sentences, images and bad entries per split; exit 1 if any entry is bad."""
    from sera_cli.data.check import check as check_data
    from sera_cli.data.check import find_datasets

    if dataset is None:
        found = find_datasets(data)
        if len(found) != 1:
            names = ", ".join(found) or "no folder with an instances.json"
            raise SeraError(f"{data} holds {len(found)} datasets ({names}); choose with --dataset")
        dataset = found[0]
    report = check_data(data, dataset, split_by)
    if as_json:
        payload = asdict(report)
        payload["bad"] = report.bad
        typer.echo(json.dumps(payload))
    else:
        table = Table(title=f"{report.dataset} ({report.split_by}) in {report.root}")
        extra = ("no target", "multi target") if report.generalized else ()
        for column in ("split", "refs", "sentences", "images", *extra, "bad"):
            table.add_column(column, justify="left" if column == "split" else "right")
        for split, c in report.splits.items():
            bad = f"[red]{c.bad}[/red]" if c.bad else "0"
            counts = (c.no_target, c.multi_target) if report.generalized else ()
            table.add_row(split, str(c.refs), str(c.sentences), str(c.images),
                          *map(str, counts), bad)
        _out.print(table)
        for split, c in report.splits.items():
            for problem, n in c.problems.items():
                _out.print(f"{split}: {n} refs with {problem}, e.g. {c.examples[0]}")
    if report.bad:
        raise typer.Exit(code=1)
