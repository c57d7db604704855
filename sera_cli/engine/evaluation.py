"""Scoring a model on a split as the RIS literature does, with routing statistics beside it.

Every (ref, sentence) pair counts; probabilities go back to the original image size through the
exact letterbox inverse, then one protocol (`analysis/metrics.py`: sera, cris, lavt, rela)
thresholds and scores them (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from sera_cli.analysis.metrics import DEFAULT_PROTOCOL, MaskScorer, decide
from sera_cli.analysis.routing import RoutingStats, expert_names
from sera_cli.config import THRESHOLD_DEFAULT
from sera_cli.data.dataset import ReferDataset, collate, dataset_for
from sera_cli.data.transforms import unletterbox
from sera_cli.engine.devices import autocast, dtype_of
from sera_cli.engine.loading import LoadedRun
from sera_cli.errors import SeraError
from sera_cli.model.sera import SeraModel


@torch.no_grad()
def evaluate(model: SeraModel, dataset: ReferDataset, *, batch_size: int = 16,
             threshold: float = THRESHOLD_DEFAULT, device: torch.device | str = "cpu",
             precision: str = "fp32", workers: int = 0, save_masks: Path | None = None,
             on_batch: Callable[[int], None] | None = None,
             protocol: str = DEFAULT_PROTOCOL) -> dict[str, Any]:
    """Metrics (percent, under ``protocol``) and routing statistics of ``model`` over every
    sample of ``dataset``. Saved masks are the model's answer (``p >= threshold``, empty where
    its no-target head says the expression names nothing), whatever the protocol.
    ``precision`` bf16 runs a float32 model (training's, whose master weights stay float32) under
    autocast; a model already lowered to bf16 (``open_run``) runs as it is, on bf16 pixels."""
    device = torch.device(device)
    dtype = dtype_of(model)
    if dtype != torch.float32:
        precision = "fp32"  # no autocast: it would only add casts around a bf16 model
    was_training = model.training
    model.eval()
    scorer, routing = MaskScorer(protocol, threshold), RoutingStats()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate)
    if save_masks is not None:
        (save_masks / dataset.split).mkdir(parents=True, exist_ok=True)
    for batch in loader:
        with autocast(device, precision):
            out = model(batch["image"].to(device, dtype), batch["words"].to(device))
        probs = torch.sigmoid(out.logits.float()).cpu()
        no_target = [None] * len(probs) if out.no_target is None else \
            torch.sigmoid(out.no_target.float()).cpu().tolist()
        metas = [dataset.meta(int(i)) for i in batch["index"]]
        for prob, nt, meta in zip(probs, no_target, metas, strict=True):
            original = unletterbox(prob[0], meta.letterbox).numpy()
            scorer.update(original, dataset.index.mask(meta.sample), meta.sample.expr_type, nt)
            if save_masks is not None:
                _write_mask(save_masks / dataset.split /
                            f"{meta.sample.ref_id}_{meta.sample.sent_id}.png",
                            decide(original >= threshold, nt)[0])
        routing.update(out.routings, [m.sample.expr_type for m in metas])
        if on_batch is not None:
            on_batch(len(metas))
    model.train(was_training)
    return {"split": dataset.split, "threshold": threshold, **scorer.result(),
            "routing": routing.result(lambda r: expert_names(model, r)),
            "routing_entropy": routing.entropy()}


def _write_mask(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


#: Makes a progress callback for one piece of work: (label, total) -> advance(n).
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def no_progress(label: str, total: int) -> Callable[[int], None]:
    return lambda n: None


@dataclass
class EvalPlan:
    """What one `sera eval` scores: every (data set, split), read before any is scored, so that a
    bad name fails in seconds rather than after the first split."""

    splits: list[tuple[str, ReferDataset]]  # (data set name, split)
    skipped: dict[str, dict[str, int]]  # data set -> split -> refs left out by skip_bad

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.splits))


def data_source(config: dict[str, Any], data: Path | None,
                dataset: str | None) -> tuple[Path, list[str]]:
    """The data root and data set names a command reads: the options when given, else the
    ones the run was trained on (recorded in its config.json)."""
    root = data or Path(config.get("data", {}).get("root", ""))
    if not root.is_dir():
        raise SeraError(f"data root {root} does not exist; pass --data DIR")
    names = [d.strip() for d in (dataset or config.get("train", {}).get("dataset", "synth")
                                 ).split(",") if d.strip()]
    return root, names


def plan_eval(run: LoadedRun, data: Path | None = None, dataset: str | None = None,
              split_by: str | None = None, splits: list[str] | None = None,
              skip_bad: bool = False) -> EvalPlan:
    """The splits to score; ``splits`` None means every split but train."""
    from sera_cli.data.refer import ReferIndex

    root, names = data_source(run.config, data, dataset)
    chosen, skipped = [], {}
    for name in names:
        index = ReferIndex.load(root, name, split_by, skip_bad=skip_bad)
        if index.skipped:
            skipped[name] = dict(index.skipped)
        for split in splits or [s for s in index.splits() if s != "train"]:
            chosen.append((name, dataset_for(run.model.cfg, index, split)))
    return EvalPlan(chosen, skipped)


def evaluate_plan(run: LoadedRun, plan: EvalPlan, *, batch_size: int = 16, workers: int = 0,
                  save_masks: Path | None = None, progress: ProgressFactory = no_progress,
                  protocol: str = DEFAULT_PROTOCOL) -> list[dict[str, Any]]:
    """Score every split of ``plan`` under ``protocol``: one result per split, labelled with its
    data set and protocol. Masks go to ``save_masks/{split}/`` (``save_masks/{dataset}/{split}/``
    for several data sets)."""
    several = len(plan.datasets) > 1
    results = []
    for name, ds in plan.splits:
        result = evaluate(run.model, ds, batch_size=batch_size, threshold=run.threshold,
                          device=run.device, workers=workers,
                          save_masks=save_masks / name if save_masks and several else save_masks,
                          on_batch=progress(f"{name} {ds.split}", len(ds)), protocol=protocol)
        results.append({"dataset": name, **result})
    return results


def route_split(run: LoadedRun, split: str, *, data: Path | None = None,
                dataset: str | None = None, split_by: str | None = None,
                skip_bad: bool = False, batch_size: int = 16, workers: int = 0,
                progress: ProgressFactory = no_progress) -> dict[str, Any]:
    """Evaluate one split of one data set for its routing statistics (`sera experts stats`)."""
    _, names = data_source(run.config, data, dataset)
    if len(names) != 1:
        raise SeraError(f"--dataset names {len(names)} data sets ({', '.join(names)}); "
                        "routing statistics are per data set: give one")
    plan = plan_eval(run, data, dataset, split_by, [split], skip_bad)
    result = evaluate_plan(run, plan, batch_size=batch_size, workers=workers,
                           progress=progress)[0]
    if not result["routing"]:
        raise SeraError(f"{run.path} has no routed experts (trained with --experts '' and no "
                        "adapter experts): there is nothing to analyse")
    return result
