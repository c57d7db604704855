"""``sera demo``: the whole tool in one command, on the CPU, with no downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

O = typer.Option  # noqa: E741

DEMO_SPLITS = ("val", "testA", "testB")
#: One epoch fewer than `sera train`'s sera-tiny default, so that the whole demo (data, training,
#: evaluation of three splits, report) stays under 15 minutes on 2 CPU cores.
DEMO_EPOCHS = 2
EXAMPLES_PER_TYPE = 2


def demo(
    out: Annotated[Path | None, O(help="Run folder (default: runs/<time>-demo).")] = None,
    epochs: Annotated[int, O(min=1, help="Training epochs (sera train's default is 3).")
                      ] = DEMO_EPOCHS,
    max_steps: Annotated[int | None, O(min=1, help="Stop training after this many steps.")
                         ] = None,
    data: Annotated[Path | None, O(help="Data root (default: the synthetic set).")] = None,
    as_json: Annotated[bool, O("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Synthesize data, train sera-tiny, evaluate, predict examples and write a report."""
    import numpy as np

    from sera_cli.cli.progress import TrainProgress, bar, err, synthetic_data
    from sera_cli.data.dataset import ReferDataset
    from sera_cli.evaluate import evaluate
    from sera_cli.predict import Predictor, overlay
    from sera_cli.report import write_report
    from sera_cli.run_config import build_configs
    from sera_cli.runs import new_run_dir, runs_root
    from sera_cli.train import Trainer

    if data is None:
        data = synthetic_data(quiet=as_json)
    model_cfg, train_cfg = build_configs({"preset": "sera-tiny", "data": str(data),
                                          "epochs": epochs, "max_steps": max_steps})
    run = out or new_run_dir(runs_root(), "demo")
    with bar(quiet=as_json) as progress:
        trainer = Trainer(model_cfg, train_cfg, run, data, reporter=TrainProgress(progress))
        trained = trainer.fit()
    predictor = Predictor(run)
    index = trainer.val_set.index
    results = []
    with bar(quiet=as_json) as progress:
        for split in DEMO_SPLITS:
            ds = ReferDataset(index, split, model_cfg.image_size, model_cfg.text.context_length,
                              mean=model_cfg.mean, std=model_cfg.std)
            task = progress.add_task(f"eval {split}", total=len(ds), info="")
            result = evaluate(predictor.model, ds, threshold=predictor.threshold,
                              on_batch=lambda n, t=task: progress.advance(t, n))
            results.append({"dataset": index.dataset, **result})
    report_dir = run / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    from sera_cli.routing_stats import draw_heatmap

    routing_lines = [
        "## Training", "",
        f"{trained['steps']} steps of batch {train_cfg.batch_size} in {trained['seconds']:.0f} s "
        f"(validation included), best val mIoU {trained['best_val_miou']:.1f}.", ""]
    for r in results:
        png = draw_heatmap(r, report_dir / f"routing-{r['split']}.png",
                           title=f"routing on {r['split']} ({r['n']} samples)")
        routing_lines += [f"## Routing heat map: {r['split']}", "",
                          f"![routing on {r['split']}]({png.name})", ""]
    examples = []
    seen: dict[str, int] = {}
    for sample in index.samples("testB"):
        kind = sample.expr_type or "untyped"
        if seen.get(kind, 0) >= EXAMPLES_PER_TYPE:
            continue
        seen[kind] = seen.get(kind, 0) + 1
        path = index.image_path(sample)
        prediction = predictor(path, sample.sentence)
        gt = index.mask(sample)
        union = np.count_nonzero(prediction.mask | gt)
        iou = np.count_nonzero(prediction.mask & gt) / union if union else 1.0
        name = f"{sample.ref_id}_{sample.sent_id}.png"
        overlay(path, prediction, sample.sentence).save(report_dir / name)
        examples.append({"expression": sample.sentence, "type": kind, "iou": iou,
                         "overlay": name, "routing": prediction.routing})
    report = write_report(report_dir, f"sera demo: {run}", results, examples,
                          extra=routing_lines)
    if as_json:
        typer.echo(json.dumps({"run": str(run), "report": str(report),
                               "results": results}, indent=2))
        return
    from sera_cli.cli.evaluate import print_results

    print_results(results, predictor.threshold, str(run))
    err.print(f"report: {report}")
