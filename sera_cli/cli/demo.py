"""``sera demo``: the whole tool in one command, on the CPU, with no downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sera_cli.cli import options
from sera_cli.engine.demo import DEMO_EPOCHS


def demo(
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/<time>-demo).")
                   ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (sera train's default "
                                                    "is 8).")] = DEMO_EPOCHS,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop training after this many "
                                                              "steps.")] = None,
    data: Annotated[Path | None, typer.Option(help="Data root (default: the synthetic set).")
                    ] = None,
    precision: options.Precision = "auto",
    as_json: options.Json = False,
) -> None:
    """Synthesize data, train sera-tiny, evaluate, predict examples and write a report."""
    from importlib.util import find_spec

    from sera_cli.cli.evaluate import print_results
    from sera_cli.cli.progress import TrainProgress, bar, err, progress_factory, synthetic_data
    from sera_cli.cli.serve import INSTALL_HINT
    from sera_cli.engine.demo import run_demo
    from sera_cli.runs.folders import new_run_dir, runs_root

    data = data or synthetic_data(quiet=as_json)
    run = out or new_run_dir(runs_root(), "demo")
    with bar(quiet=as_json) as progress:
        result = run_demo(data, run, epochs=epochs, max_steps=max_steps, precision=precision,
                          reporter=TrainProgress(progress),
                          progress=progress_factory(progress, "eval "))
    if as_json:
        typer.echo(json.dumps({"run": str(result.run), "report": str(result.report),
                               "results": result.results}, indent=2))
        return
    print_results(result.results, result.threshold, str(result.run))
    err.print(f"report: {result.report}")
    err.print(f"try it in a browser: sera serve --checkpoint {result.run}"
              + ("" if find_spec("gradio") else f"  (first: {INSTALL_HINT})"),
              markup=False, soft_wrap=True)  # "[serve]" is not a style
