"""``sera eval``: score a run on one or more data sets and splits, as the literature reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

O = typer.Option  # noqa: E741

METRIC_COLUMNS = ["miou", "oiou", "prec@0.5", "prec@0.6", "prec@0.7", "prec@0.8", "prec@0.9"]


def evaluate(
    checkpoint: Annotated[Path | None, O(help="Run folder (default: the latest run).")] = None,
    data: Annotated[Path | None, O(help="Data root (default: the run's own data).")] = None,
    dataset: Annotated[str | None, O(help="Data sets, comma-separated (refcoco,refcoco+,"
                                          "refcocog); default: the run's.")] = None,
    split_by: Annotated[str | None, O(help="refs file for every data set (default: each "
                                           "one's own: unc, umd).")] = None,
    split: Annotated[str | None, O(help="Splits, comma-separated (default: every split "
                                        "but train).")] = None,
    threshold: Annotated[float | None, O(help="Mask probability threshold (default: the "
                                              "run's, 0.35).")] = None,
    batch_size: Annotated[int, O(min=1, help="Samples per forward pass.")] = 16,
    device: Annotated[str, O(help="cpu or cuda.")] = "cpu",
    workers: Annotated[int, O(min=0, help="Data-loading worker processes.")] = 0,
    save_masks: Annotated[Path | None, O(help="Write DIR/{split}/{ref_id}_{sent_id}.png.")
                          ] = None,
    skip_bad: Annotated[bool, O("--skip-bad", help="Leave out broken data entries.")] = False,
    as_json: Annotated[bool, O("--json", help="Print results as JSON.")] = False,
) -> None:
    """Evaluate a run: mIoU, oIoU, Prec@X per split, and how the routers used their experts."""
    from sera_cli.cli.progress import bar
    from sera_cli.data.refer import ReferIndex
    from sera_cli.errors import SeraError
    from sera_cli.evaluate import evaluate as run_eval
    from sera_cli.predict import Predictor
    from sera_cli.runs import resolve_run

    splits_asked = None if split is None else [s.strip() for s in split.split(",") if s.strip()]
    if splits_asked == []:
        raise SeraError(f"--split {split!r} names no split; give names such as val,testA")
    if save_masks is not None:  # before the model load: a bad folder fails at once
        try:
            save_masks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeraError(f"--save-masks: cannot create the folder {save_masks}: "
                            f"{exc.strerror or exc}") from None
    run = resolve_run(checkpoint)
    predictor = Predictor(run, device=device, threshold=threshold)
    model = predictor.model
    root, names = run_data(predictor.config, data, dataset)
    # every data set and split is read before any is scored: a bad name fails in seconds
    datasets: dict[str, list[Any]] = {}
    for name in names:
        index = ReferIndex.load(root, name, split_by, skip_bad=skip_bad)
        if index.skipped:
            typer.echo(f"{name}: left out {sum(index.skipped.values())} bad refs (--skip-bad): "
                       + ", ".join(f"{k} {v}" for k, v in index.skipped.items()), err=True)
        splits = splits_asked or [s for s in index.splits() if s != "train"]
        datasets[name] = [split_dataset(model, index, s) for s in splits]
    results = []
    with bar(quiet=as_json) as progress:
        for name, split_sets in datasets.items():
            for ds in split_sets:
                task = progress.add_task(f"{name} {ds.split}", total=len(ds), info="")
                result = run_eval(model, ds, batch_size=batch_size,
                                  threshold=predictor.threshold, device=device, workers=workers,
                                  save_masks=save_masks / name if save_masks and len(names) > 1
                                  else save_masks,
                                  on_batch=lambda n, t=task: progress.advance(t, n))
                results.append({"dataset": name, **result})
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(run), "threshold": predictor.threshold,
                               "results": results}, indent=2))
        return
    print_results(results, predictor.threshold, str(run))


def print_results(results: list[dict[str, Any]], threshold: float, run: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from sera_cli.routing_stats import routing_tables

    console = Console()
    table = Table(title=f"{run} (threshold {threshold})")
    for column in ["data set", "split", "n", *METRIC_COLUMNS]:
        table.add_column(column, justify="right" if column not in ("data set", "split")
                         else "left")
    for r in results:
        table.add_row(r["dataset"], r["split"], str(r["n"]),
                      *[_pct(r[m]) for m in METRIC_COLUMNS])
        for expr_type, sub in r.get("by_type", {}).items():
            table.add_row("", f"  {expr_type}", str(sub["n"]), *[_pct(sub[m])
                                                                  for m in METRIC_COLUMNS])
    console.print(table)
    for r in results:
        for routing in routing_tables(r, f"{r['dataset']} {r['split']}"):
            console.print(routing)


def run_data(config: dict[str, Any], data: Path | None,
             dataset: str | None) -> tuple[Path, list[str]]:
    """The data root and data set names a command reads: the options when given, else the
    ones the run was trained on (recorded in its config.json)."""
    from sera_cli.errors import SeraError

    root = data or Path(config.get("data", {}).get("root", ""))
    if not root.is_dir():
        raise SeraError(f"data root {root} does not exist; pass --data DIR")
    names = [d.strip() for d in (dataset or config.get("train", {}).get("dataset", "synth")
                                 ).split(",") if d.strip()]
    return root, names


def split_dataset(model: Any, index: Any, split: str) -> Any:
    """One split of a ReferIndex as ``model`` reads it: its input size, word length and
    normalization, no augmentation."""
    from sera_cli.data.dataset import ReferDataset

    cfg = model.cfg
    return ReferDataset(index, split, cfg.image_size, cfg.text.context_length, mean=cfg.mean,
                        std=cfg.std)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
