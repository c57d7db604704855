"""The paper's ablation in miniature: do SERA's experts lift a frozen, pretrained backbone?

    python bench/ablation.py [--seeds 3] [--source-images 600] [--source-epochs 2]
                             [--target-images 300] [--steps 200] [--plain-source]
                             [--work DIR] [--quick]

1. Synthesize the source and the shifted target task (`sera data synth --domain source|target`).
2. Pretrain sera-tiny on the source, fully tuned and without experts: the backbone "pretrained
   elsewhere" (kept in --work and reused when its settings match). Its SERA-Adapters (blocks,
   projections, convolutions, cross-attention; no experts) are trained with it, so every row
   but the experts starts from them; with `--plain-source` the source has none, as DINOv2 has
   none, every row's adapters are new, and a first row "no SERA modules" is the paper's baseline.
3. For each row (no experts; + the adapter experts; + adapter and fusion experts at K = 1..4)
   and each seed, train on the target from that run (`--init-from`, `--tune bias-ln`: backbones
   frozen but for biases and LayerNorms; heads copied; experts new, from zero), then score val,
   testA and testB, and keep the experts' diagnostics (gates per expression type, relative
   contribution, routing entropy) and the scored step's checkpoint (for `sera experts stats`).

Prints the table, writes `bench/results/ablation.json`, and rewrites the generated part of
`docs/ablation.md` (between its markers). Every row trains the same number of steps.
`--resume` continues an interrupted ablation: each run goes on from its last checkpoint, and
one already at its last step is only scored again.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import common
from torch import nn

from sera_cli.config import ModelConfig, TrainConfig
from sera_cli.config.layering import RESUME_SAFE, build_configs
from sera_cli.data.dataset import dataset_for
from sera_cli.data.refer import ReferIndex
from sera_cli.data.synth import synthesize
from sera_cli.engine.evaluation import evaluate
from sera_cli.engine.training import Trainer
from sera_cli.errors import TrainingInterrupted
from sera_cli.runs.checkpoints import read_config
from sera_cli.runs.folders import CHECKPOINTS, LAST, METRICS_FILE, last_checkpoint

FUSION = "spatial,context,boundary,shape"
ADAPTER = "spatial,boundary"
ROWS: dict[str, dict[str, Any]] = {
    "no experts": {"adapter_experts": "", "experts": ""},
    "+ adapter experts": {"adapter_experts": ADAPTER, "experts": ""},
    **{f"+ adapter and fusion experts, K={k}": {"adapter_experts": ADAPTER, "experts": FUSION,
                                               "topk": k} for k in (1, 2, 3, 4)},
}
#: Only over a source pretrained without SERA-Adapters (--plain-source): the paper's baseline,
#: the frozen backbones with neither SERA module. Over the default source it has nowhere to put
#: the source's adapter weights.
PLAIN_ROW = {"no SERA modules": {"adapter_blocks": [], "adapter_experts": "", "experts": ""}}
SPLITS = ("val", "testA", "testB")
#: The options that size the miniature (beside --seeds): they change what every run trains.
SIZES = ("source_images", "source_epochs", "target_images", "steps")
DOC = Path(__file__).resolve().parents[1] / "docs" / "ablation.md"
BEGIN, END = "<!-- ablation:begin -->", "<!-- ablation:end -->"


def registry() -> Any:
    """The built-in plugin only, so that whatever else is installed cannot change the figures."""
    import sera_builtin

    from sera_cli.registry import create_registry

    return create_registry(plugins=[sera_builtin], entry_points=False)


def train(run: Path, data: Path, prepare: Callable[[Trainer], None] | None = None,
          resume_after: Path | None = None, **values: Any) -> tuple[Trainer, int]:
    """A sera-tiny Trainer on the CPU with ``values`` over the preset's defaults, fitted
    (after ``prepare(trainer)``, where given). A rerun starts over, unless ``resume_after`` (the
    source run it starts from) is given and ``run`` holds a checkpoint: then it continues from
    there, a run already at its last step is only loaded, and a checkpoint of another training
    or of an earlier source ends the ablation with one line. Returns the trainer and the step
    it started from."""
    values = {"preset": "sera-tiny", "data": str(data), "device": "cpu", "log_every": 50,
              **values}
    model_cfg, train_cfg = build_configs(values)
    resuming = resume_after is not None and (run / CHECKPOINTS / LAST).is_file()
    if resuming:
        _check_resumable(run, model_cfg, train_cfg, resume_after)
    else:
        shutil.rmtree(run, ignore_errors=True)
    trainer = Trainer(model_cfg, train_cfg, run, data, registry=registry())
    if prepare is not None:  # before resuming: a variant may regroup the optimizer's parameters
        prepare(trainer)
    if resuming:
        trainer.resume()
    started = trainer.step
    trainer.fit()
    return trainer, started


def _check_resumable(run: Path, model_cfg: ModelConfig, train_cfg: TrainConfig,
                     source: Path) -> None:
    """Refuse, in one line, to continue a run that this invocation would train otherwise, or
    that started from an earlier state of the source run. The configs are built by today's
    code, so a changed preset or default is seen; a change to the model or the training loop
    is not: --resume is for the code that wrote the runs. The data and source paths are not
    compared: --work fixes them, as it fixes the run folder, and the source's age is checked."""
    checkpoint = last_checkpoint(run)
    stored = read_config(checkpoint)
    fresh = model_cfg.to_dict()
    if fresh["no_target_head"] is None:  # decided when training starts, then recorded
        fresh["no_target_head"] = stored["model"].get("no_target_head")
    changed = _differences(ModelConfig.from_dict(stored["model"]).to_dict(), fresh)
    changed += [name for name in _differences(asdict(TrainConfig.from_dict(stored["train"])),
                                              asdict(train_cfg))
                if name not in RESUME_SAFE | {"data", "init_from"}]
    if changed:
        raise SystemExit(f"--resume: {run} was trained with other values of "
                         f"{', '.join(changed)}; delete it or run without --resume")
    weights = source / "model.safetensors"
    if weights.stat().st_mtime > (checkpoint / "model.safetensors").stat().st_mtime:
        raise SystemExit(f"--resume: {weights} was written after {checkpoint}, so the run "
                         "started from an earlier source; delete it or run without --resume")


def pretrain_source(work: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """The source run (reused when its settings match); returns it and its training seconds.
    ``--plain-source`` pretrains it without SERA-Adapters, as DINOv2 is pretrained: every row's
    adapters are then new, and the first row has none. A ``--source-set`` source is a run of its
    own, beside the default one."""
    settings = {"images": args.source_images, "epochs": args.source_epochs,
                **({"set": args.source_set} if args.source_set else {})}
    name = "source-run" + ("-plain" if args.plain_source else "") + _tag(args.source_set)
    run, stamp = work / name, work / f"{name}.json"
    if (run / "model.safetensors").exists() and stamp.exists() and \
            json.loads(stamp.read_text())["settings"] == settings:
        return run, json.loads(stamp.read_text())["seconds"]
    data = work / "source"
    synthesize(data, n_images=args.source_images, seed=0, domain="source")
    values = {"adapter_experts": "", "experts": "", "tune": "full", "epochs": args.source_epochs,
              **({"adapter_blocks": []} if args.plain_source else {}),
              **{k: _config_value(v) for k, v in args.source_set.items()}}
    train(run, data, **values)
    seconds = training_seconds(run)  # measured as the rows' are: they are summed
    stamp.write_text(json.dumps({"settings": settings, "seconds": seconds}))
    return run, seconds


def live_experts(trainer: Trainer, std: float = 0.02) -> None:
    """Investigation variant: the experts' zero-initialized last layers drawn from N(0, std)
    instead. With every expert the identity at step 0, the gradient reaching a router through
    the mixture is exactly zero (the gates multiply equal outputs and sum to 1); this tests
    whether that start is what keeps the routers near uniform."""
    for stage in trainer.model.routed().values():
        for expert in stage.experts:
            for layer in expert.modules():
                if isinstance(layer, nn.Conv2d | nn.Linear) and not layer.weight.any():
                    nn.init.normal_(layer.weight, std=std)


def fast_experts(trainer: Trainer, mult: float = 10.0) -> None:
    """Investigation variant: the experts and routers learn at ``mult`` times the rate of the
    other new modules, to test whether they are too slow to leave the identity in a short run."""
    moved = {id(p): p for stage in trainer.model.routed().values() for p in stage.parameters()
             if p.requires_grad}
    new = trainer.optimizer.param_groups[0]
    new["params"] = [p for p in new["params"] if id(p) not in moved]
    trainer.optimizer.add_param_group({**{k: v for k, v in new.items() if k != "params"},
                                       "params": list(moved.values()),
                                       "lr": new["lr"] * mult})
    trainer.base_lrs = [*trainer.base_lrs, trainer.base_lrs[0] * mult]


def no_noise(trainer: Trainer) -> None:
    """Investigation variant: the noisy routers' learned noise held at zero (its layer's
    weights zero and frozen, its bias so low that softplus gives under 1e-13). At K = 4 the
    noise selects nothing, it only jitters the mixture weights; this tests whether that jitter
    is what keeps the routers from settling. The layer stays in the optimizer, which skips a
    parameter whose gradient stays None (AdamW, as every torch optimizer)."""
    for stage in trainer.model.routed().values():
        noise = getattr(stage.router, "noise", None)
        if noise is not None:
            nn.init.zeros_(noise.weight)
            nn.init.constant_(noise.bias, -30.0)
            noise.requires_grad_(False)


VARIANTS: dict[str, Callable[[Trainer], None] | None] = {
    "paper": None, "live-experts": live_experts, "fast-experts": fast_experts,
    "no-noise": no_noise}


def gate_spread(routing: dict[str, Any]) -> dict[str, float]:
    """Per routed stage: the largest difference, in points, between two expression types'
    mean gate of one expert."""
    spread = {}
    for router, all_types in routing.items():
        by_type = {t: stats for t, stats in all_types.items() if t != "all"}
        experts = {e for stats in by_type.values() for e in stats}
        spread[router] = max((max(s[e]["gate"] for s in by_type.values() if e in s)
                              - min(s[e]["gate"] for s in by_type.values() if e in s)
                              for e in experts), default=0.0)
    return spread


def one_run(row: str, seed: int, source: Path, target: Path, work: Path,
            args: argparse.Namespace) -> dict[str, Any]:
    run = work / "runs" / f"{_slug(row)}-{args.variant}{args.run_tag}-seed{seed}"
    overrides = {k: _config_value(v) for k, v in args.set.items()}
    trainer, started = train(run, target, VARIANTS[args.variant],
                             resume_after=source if args.resume else None,
                             init_from=str(source), tune="bias-ln", seed=seed,
                             max_steps=args.steps, **{**rows_for(args)[row], **overrides})
    index = ReferIndex.load(target, "synth")
    scores = {split: evaluate(trainer.model, dataset_for(trainer.model_cfg, index, split),
                              batch_size=32) for split in SPLITS}
    val = scores["val"]
    # the weights scored here: the run folder itself holds those that scored best on val
    checkpoint = last_checkpoint(run)
    return {"row": row, "seed": seed, "seconds": training_seconds(run),
            "resumed_at_step": started, "checkpoint": str(checkpoint),
            **{f"{split}_miou": scores[split]["miou"] for split in SPLITS},
            "routing": val["routing"], "routing_entropy": val["routing_entropy"],
            "gate_spread": gate_spread(val["routing"])}


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys, dotted into sections, whose values differ between two nested configs."""
    found = []
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            found.append(prefix + key)
    return found


def training_seconds(run: Path) -> float:
    """The run's training time as its last validation line records it: the same for a run
    trained here, resumed here or only loaded (``elapsed_s`` counts every process)."""
    lines = (run / METRICS_FILE).read_text().splitlines()
    seconds = next((json.loads(ln)["elapsed_s"] for ln in reversed(lines) if '"elapsed_s"' in ln),
                   None)
    if seconds is None:
        raise SystemExit(f"{run / METRICS_FILE} has no validation line: the run did not "
                         "finish its training")
    return seconds


def rows_for(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {**PLAIN_ROW, **ROWS} if args.plain_source else ROWS


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for row in {**PLAIN_ROW, **ROWS}:
        mine = [r for r in runs if r["row"] == row]
        if not mine:
            continue
        entry: dict[str, Any] = {"row": row, "seeds": len(mine)}
        for split in SPLITS:
            values = [r[f"{split}_miou"] for r in mine]
            entry[split] = (statistics.mean(values),
                            statistics.stdev(values) if len(values) > 1 else 0.0)
        spreads = [max(r["gate_spread"].values(), default=0.0) for r in mine]
        entry["gate_spread"] = statistics.mean(spreads)
        entry["contribution"] = _mean_contributions(mine)
        entry["seconds"] = statistics.mean(r["seconds"] for r in mine)
        rows.append(entry)
    return rows


def _mean_contributions(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage and expert: its val contribution over all samples, the mean over seeds."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        for router, by_type in r["routing"].items():
            for expert, figures in by_type["all"].items():
                out.setdefault(router, {}).setdefault(expert, []).append(
                    figures["contribution"])
    return {router: {e: statistics.mean(v) for e, v in experts.items()}
            for router, experts in out.items()}


def _changed_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The options this run sets away from their defaults, as on its command line: they name its
    results file, so that an investigation never overwrites the ablation as built."""
    sizes = ("seeds", *SIZES)
    words = ["--quick"] if args.quick else []
    words += ["--plain-source"] if args.plain_source else []
    words += [f"--{key.replace('_', '-')} {getattr(args, key)}"
              for key in (*(() if args.quick else sizes), "rows", "variant")
              if getattr(args, key) != parser.get_default(key)]
    return words + [f"--{option} {key}={value}" for option, values in
                    (("source-set", args.source_set), ("set", args.set))
                    for key, value in values.items()]


def _run_tag(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """What names a run's folder beside its row, variant and seed: every setting that changes
    what it trains, so that no investigation replaces the runs of another (a 600-step run the
    200-step one, a plain-source run the default's, a --source-set run those of the default
    source). The seed count and rows do not: seed 0 of a 5-seed run is seed 0 of the 3-seed
    one; nor do sizes under --quick, which sets its own."""
    sizes = [f"-{key.replace('_', '-')}-{getattr(args, key)}"
             for key in (() if args.quick else SIZES)
             if getattr(args, key) != parser.get_default(key)]
    return "".join(["-plain-source" if args.plain_source else "", *sizes,
                    _tag(args.source_set, "source-"), _tag(args.set)])


def _tag(values: dict[str, str], prefix: str = "") -> str:
    """``--set``-style values as a folder-name suffix, in a fixed order."""
    return "".join(f"-{prefix}{k}={v}" for k, v in sorted(values.items()))


def _key_value(item: str, option: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"{option} {item!r}: expected KEY=VALUE")
    return key.replace("-", "_"), value


def _config_value(text: str) -> Any:
    """A --set value as the config takes it: JSON where it is JSON (``true``, ``0.5``), else the
    text (the config's own parsing reads numbers and lists from it). Only the training sees the
    parsed value; names and the recorded command keep the text as typed, so they can be rerun."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _slug(row: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", row.lower()).strip("-")


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [BEGIN, "",
             f"Generated by `{meta['command']}` on {meta['date']}: {meta['seeds']} seeds a row, "
             f"{meta['steps']} target steps each; the source run trained {meta['source_s']:.0f} s; "
             f"{_duration(meta)} on {meta['machine']['torch_threads']} threads "
             f"({meta['machine']['cpu']}, load average "
             f"{meta['machine']['load_average'][0]:.1f} at the end).", "",
             "| row | val mIoU | testA mIoU | testB mIoU | largest gate gap between types "
             "(points) | s per run |", "| --- | --- | --- | --- | --- | --- |"]
    for e in summary:
        cells = [f"{e[s][0]:.1f} ± {e[s][1]:.1f}" for s in SPLITS]
        lines.append(f"| {e['row']} | {' | '.join(cells)} | {e['gate_spread']:.1f} | "
                     f"{e['seconds']:.0f} |")
    lines += ["", "Mean relative contribution `‖gate · (expert(x) − x)‖ / ‖x‖` on val, per "
              "stage and expert (mean of seeds):", ""]
    for e in summary:
        if e["contribution"]:
            parts = "; ".join(f"{router}: " + ", ".join(f"{x} {v:.3f}" for x, v in
                                                        sorted(experts.items()))
                              for router, experts in e["contribution"].items())
            lines.append(f"- {e['row']}: {parts}")
    return "\n".join(lines + ["", END])


def _duration(meta: dict[str, Any]) -> str:
    """How long the ablation took: its wall time, or, when --resume continued runs of earlier
    invocations, the training time of the source and all runs (that wall time is only the
    last invocation's)."""
    resumed = meta.get("resumed_runs", 0)
    if not resumed:
        return f"the whole ablation took {meta['total_s'] / 60:.1f} minutes"
    return (f"the source and the runs trained {meta['train_s'] / 60:.1f} minutes in all "
            f"({resumed} runs continued or reloaded by `--resume`)")


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Ablation\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(head + block + rest.split(END, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source-images", type=int, default=600)
    parser.add_argument("--source-epochs", type=int, default=2)
    parser.add_argument("--target-images", type=int, default=300)
    parser.add_argument("--steps", type=int, default=200, help="training steps on the target")
    parser.add_argument("--rows", default="", help="comma-separated row numbers (default all)")
    parser.add_argument("--variant", choices=list(VARIANTS), default="paper",
                        help="paper: sera as built; live-experts, fast-experts, no-noise: "
                        "investigations")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for every row's target run (an investigation; "
                        "repeatable), e.g. --set adapter_scale=1.0")
    parser.add_argument("--source-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value for the source run, which then gets a folder of "
                        "its own (repeatable), e.g. --source-set seed=1 --source-set "
                        "precision=fp32")
    parser.add_argument("--plain-source", action="store_true",
                        help="pretrain the source without SERA-Adapters and add the row 'no SERA "
                        "modules' first (row 0; the others move up one)")
    parser.add_argument("--work", type=Path, default=Path(".bench-ablation"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check that it runs; writes no docs")
    parser.add_argument("--resume", action="store_true",
                        help="continue each run from its checkpoint in --work (one already at "
                        "its last step is only scored) instead of starting over; for the code "
                        "that wrote them")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="train nothing: report an earlier run's results file again")
    args = parser.parse_args()
    args.set = dict(_key_value(item, "--set") for item in args.set)
    args.source_set = dict(_key_value(item, "--source-set") for item in args.source_set)
    if args.render:
        results = json.loads(args.render.read_text())
        for r in results["runs"]:  # recomputed: the figures derive from the stored routing
            r["gate_spread"] = gate_spread(r["routing"])
        report(results["runs"], {k: v for k, v in results.items()
                                 if k not in ("summary", "runs")}, args.render.stem)
        return
    changed = _changed_options(args, parser)
    args.run_tag = _run_tag(args, parser)
    if args.quick:  # in a folder of its own: it must not replace the real source run or rows
        args.seeds, args.source_images, args.source_epochs = 2, 12, 1
        args.target_images, args.steps = 12, 3
        args.work = args.work / "quick"
    began = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    source, source_s = pretrain_source(args.work, args)
    target = args.work / "target"
    synthesize(target, n_images=args.target_images, seed=1, domain="target")
    chosen = args.rows.split(",") if args.rows else None
    rows = [r for i, r in enumerate(rows_for(args)) if chosen is None or str(i) in chosen]
    runs = []
    for row in rows:
        for seed in range(args.seeds):
            try:
                runs.append(one_run(row, seed, source, target, args.work, args))
            except TrainingInterrupted as stop:  # its state is saved; other errors say theirs
                raise SystemExit(f"{row}, seed {seed}: interrupted at step {stop.step}, its "
                                 "state saved; to go on, run the same command with --resume"
                                 ) from None
            print(f"{row}, seed {seed}: val {runs[-1]['val_miou']:.2f} "
                  f"({runs[-1]['seconds']:.0f} s)", flush=True)
    meta = {"command": " ".join(["python bench/ablation.py", *changed]),
            "variant": args.variant, "set": args.set, "source_set": args.source_set,
            "date": time.strftime("%Y-%m-%d"), "seeds": args.seeds, "steps": args.steps,
            "source_images": args.source_images, "source_epochs": args.source_epochs,
            "target_images": args.target_images, "source_s": source_s,
            "total_s": time.perf_counter() - began,
            "train_s": source_s + sum(r["seconds"] for r in runs),
            "resumed_runs": sum(r["resumed_at_step"] > 0 for r in runs),  # or only reloaded
            "machine": common.machine(),
            "rows": args.rows, "plain_source": args.plain_source}
    report(runs, meta, "-".join(["ablation", *(_slug(word) for word in changed)]))


def report(runs: list[dict[str, Any]], meta: dict[str, Any], name: str) -> None:
    """Print the table, write the results file, and (a full run of sera as built) the doc."""
    summary = summarize(runs)
    common.print_table("SERA ablation (val / testA / testB mIoU, mean ± std over seeds)",
                       ["row", *SPLITS, "gate gap", "s"],
                       [[e["row"], *(f"{e[s][0]:.1f} ± {e[s][1]:.1f}" for s in SPLITS),
                         f"{e['gate_spread']:.1f}", f"{e['seconds']:.0f}"] for e in summary])
    common.write_results(name, {**meta, "summary": summary, "runs": runs})
    if name == "ablation":  # every option at its default
        write_doc(markdown(summary, meta))


if __name__ == "__main__":
    main()
