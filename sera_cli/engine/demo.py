"""The demo workflow: synthetic data, a short sera-tiny training, evaluation of three splits,
example predictions per expression type, and a Markdown report with routing heat maps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # this module is imported by `sera --help`: torch stays out until a demo runs
    from sera_cli.engine.evaluation import ProgressFactory

DEMO_SPLITS = ("val", "testA", "testB")
#: Fewer epochs than `sera train`'s sera-tiny default (8), so that the whole demo (data,
#: training, evaluation of three splits, report) stays under 15 minutes on 2 CPU cores.
DEMO_EPOCHS = 2
EXAMPLES_PER_TYPE = 2


@dataclass
class DemoResult:
    run: Path
    report: Path
    threshold: float
    results: list[dict[str, Any]]  # one per split, as `sera eval` gives them


def run_demo(data: Path, run: Path, *, epochs: int = DEMO_EPOCHS, max_steps: int | None = None,
             reporter: Any = None, progress: ProgressFactory | None = None,
             precision: str = "auto") -> DemoResult:
    """Train sera-tiny on ``data`` into ``run``, evaluate, predict examples, write the report;
    ``precision`` is read as `sera train` and `sera predict` read it."""
    from sera_cli.config.layering import build_configs
    from sera_cli.engine.evaluation import EvalPlan, evaluate_plan, no_progress
    from sera_cli.engine.inference import Predictor
    from sera_cli.engine.training import Trainer

    model_cfg, train_cfg = build_configs({"preset": "sera-tiny", "data": str(data),
                                          "epochs": epochs, "max_steps": max_steps,
                                          "precision": precision})
    trainer = Trainer(model_cfg, train_cfg, run, data, reporter=reporter)
    trained = trainer.fit()
    predictor = Predictor(run, precision=precision)
    index = trainer.val_set.index
    from sera_cli.data.dataset import dataset_for

    plan = EvalPlan([(index.dataset, dataset_for(model_cfg, index, s)) for s in DEMO_SPLITS], {})
    results = evaluate_plan(predictor.loaded, plan, progress=progress or no_progress)
    report = _write_report(run / "report", run, trained, train_cfg.batch_size, results,
                           _examples(predictor, index, run / "report"))
    return DemoResult(run, report, predictor.threshold, results)


def _examples(predictor: Any, index: Any, folder: Path) -> list[dict[str, Any]]:
    """Up to EXAMPLES_PER_TYPE overlays per expression type from testB, with their IoU."""
    from sera_cli.analysis.metrics import sample_iou
    from sera_cli.engine.inference import overlay

    folder.mkdir(parents=True, exist_ok=True)
    examples: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for sample in index.samples("testB"):
        kind = sample.expr_type or "untyped"
        if seen.get(kind, 0) >= EXAMPLES_PER_TYPE:
            continue
        seen[kind] = seen.get(kind, 0) + 1
        path = index.image_path(sample)
        prediction = predictor(path, sample.sentence)
        name = f"{sample.ref_id}_{sample.sent_id}.png"
        overlay(path, prediction, sample.sentence).save(folder / name)
        examples.append({"expression": sample.sentence, "type": kind,
                         "iou": sample_iou(prediction.mask, index.mask(sample)),
                         "overlay": name, "routing": prediction.routing})
    return examples


def _write_report(folder: Path, run: Path, trained: dict[str, Any], batch_size: int,
                  results: list[dict[str, Any]], examples: list[dict[str, Any]]) -> Path:
    from sera_cli.analysis.heatmap import draw_heatmap
    from sera_cli.analysis.report import write_report

    lines = [
        "## Training", "",
        f"{trained['steps']} steps of batch {batch_size} in {trained['seconds']:.0f} s "
        f"(validation included), best val mIoU {trained['best_val_miou']:.1f}.", ""]
    for r in results:
        png = draw_heatmap(r, folder / f"routing-{r['split']}.png",
                           title=f"routing on {r['split']} ({r['n']} samples)")
        lines += [f"## Routing heat map: {r['split']}", "",
                  f"![routing on {r['split']}]({png.name})", ""]
    return write_report(folder, f"sera demo: {run}", results, examples, extra=lines)
