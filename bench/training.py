"""Training speed and memory of sera-tiny on the CPU: samples/s of training steps at the preset's
batch size (and more with --batches), data loading timed apart from the step's compute; with
--train-to-miou, the time a real `Trainer.fit()` with the preset's defaults (what a bare
`sera train` runs) takes to reach a val mIoU.

    python bench/training.py [--quick] [--batches 16,32] [--precision auto|fp32|bf16]
                             [--train-to-miou 50 [--val-every 100] [--max-steps N]]

Steps run on the synthetic data set (`sera_cli.data.default.ensure_synthetic`, synthesized on
first use), with the built-in plugin only, in a throw-away run folder. `--train-to-miou 50`
trains about 400 steps (7 minutes on 2 cores), validating every `--val-every` steps, and stops
at the first validation that reaches the target; `--max-steps` cuts it short to check that it
runs. `run_all.py` passes `--train-to-miou 50`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import common
import torch

from sera_cli.config import TrainConfig, preset, train_defaults
from sera_cli.config.train import PRECISIONS
from sera_cli.data.default import ensure_synthetic
from sera_cli.engine.training import Trainer

PRESET = "sera-tiny"
DEVICE = "cpu"


def registry() -> Any:
    """The built-in plugin only, so that whatever else is installed cannot change the figures."""
    import sera_builtin

    from sera_cli.registry import create_registry

    return create_registry(plugins=[sera_builtin], entry_points=False)


def trainer(run: Path, data_root: Path, reporter: Any = None, **overrides: Any) -> Trainer:
    """A sera-tiny Trainer with the preset's training defaults, some fields replaced."""
    values = {**train_defaults(PRESET), "device": DEVICE, **overrides}
    return Trainer(preset(PRESET), TrainConfig(**values), run, data_root, registry=registry(),
                   reporter=reporter)


def batch_stream(t: Trainer) -> Iterator[dict[str, torch.Tensor]]:
    """The trainer's own batches, epoch after epoch (`_batches` starts at the trainer's step)."""
    while True:
        yield from t._batches()


# -- steps ---------------------------------------------------------------------------------------
def measure_steps(batch: int, data_root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """ms per step spent fetching a batch and in `_train_step` (forward, loss, backward, Adam),
    and the peak memory, after ``args.warmup`` steps."""
    with tempfile.TemporaryDirectory(prefix="sera-bench-train-") as tmp:
        t = trainer(Path(tmp) / "run", data_root, batch_size=batch,
                    max_steps=args.warmup + args.repeats, precision=args.precision)
        t.ddp_model.train()
        stream = batch_stream(t)
        data_s: list[float] = []
        compute_s: list[float] = []

        def step() -> None:
            start = time.perf_counter()
            b = next(stream)
            mid = time.perf_counter()
            t._train_step(b)
            data_s.append(mid - start)
            compute_s.append(time.perf_counter() - mid)

        common.release_memory()
        with common.peak_memory(DEVICE) as memory:
            total = common.time_interleaved({"step": step}, args.repeats, warmup=args.warmup,
                                            device=DEVICE, budget_s=args.budget)["step"]
        steps = t.step
    data = common.Timing.of(data_s[args.warmup:])
    compute = common.Timing.of(compute_s[args.warmup:])
    return {"preset": PRESET, "batch": batch, "device": DEVICE, "precision": t.precision,
            "steps": steps,
            "step": total, "data": data, "compute": compute,
            "samples_per_s": batch / total.median,
            "compute_samples_per_s": batch / compute.median, **memory}


# -- time to an mIoU -----------------------------------------------------------------------------
class _Reached(Exception):
    """Raised from the reporter to end `fit()` once the target is reached."""


class _Clock:
    """A Reporter that notes, at each validation, the wall time since `fit()` started and the
    part of it not spent validating (validation is timed by wrapping `Trainer.validate`)."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.began = 0.0
        self.total_steps = 0
        self.validating_since: float | None = None
        self.validation_s = 0.0  # finished validations, summed
        self.epochs: list[dict[str, Any]] = []
        self.steps = 0

    def start(self, total_steps: int, done: int) -> None:
        self.began, self.total_steps = time.perf_counter(), total_steps

    def step(self, logs: dict[str, Any]) -> None:
        if logs["step"] % 50 == 0:  # fit() reports every log_every (10) steps
            print(f"  step {logs['step']}/{self.total_steps}: loss {logs['loss']:.3f}, "
                  f"{logs['samples_per_s']:.1f} samples/s, "
                  f"{time.perf_counter() - self.began:.0f} s", flush=True)

    def note(self, text: str) -> None:
        print(text)

    def timed_validate(self, trainer: Trainer) -> Callable[[], Any]:
        """The trainer's `validate`, timed, noting the step it validates at (an epoch's end
        need not be a step that `fit()` reports)."""
        validate = trainer.validate

        def wrapper() -> Any:
            self.steps = trainer.step
            self.validating_since = time.perf_counter()
            try:
                return validate()
            finally:
                self.validation_s += time.perf_counter() - self.validating_since
                self.validating_since = None
        return wrapper

    def validated(self, result: dict[str, Any]) -> None:
        now = time.perf_counter()
        this_validation = now - (self.validating_since or now)  # evaluation + checkpoint save
        miou = result.get("miou")
        row = {"step": self.steps, "val_miou": miou, "wall_s": now - self.began,
               "train_s": now - self.began - self.validation_s - this_validation,
               "validation_s": this_validation}
        self.epochs.append(row)
        print(f"  step {row['step']}: val mIoU {miou if miou is None else round(miou, 2)} at "
              f"{row['wall_s']:.0f} s ({row['train_s']:.0f} s training)", flush=True)
        if miou is not None and miou >= self.target:
            raise _Reached


def train_to_miou(target: float, data_root: Path, val_every: int, max_steps: int | None,
                  keep_run: Path | None = None, precision: str = "auto") -> dict[str, Any]:
    """A real `fit()` with the preset's defaults, stopped when val mIoU first reaches ``target``;
    it validates every ``val_every`` steps, so the time found is at most that many steps late.
    The run folder goes to ``keep_run`` if given (`run_all.py` hands it to startup.py), else to
    a temporary folder."""
    clock = _Clock(target)
    overrides: dict[str, Any] = {"val_every": val_every, "precision": precision}
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    with tempfile.TemporaryDirectory(prefix="sera-bench-fit-") as tmp:
        began = time.perf_counter()
        t = trainer(keep_run or Path(tmp) / "run", data_root, reporter=clock, **overrides)
        setup_s = time.perf_counter() - began
        t.validate = clock.timed_validate(t)  # type: ignore[method-assign]
        print(f"\ntraining {PRESET} to val mIoU {target:g}: {t.total_steps} steps at most, "
              f"{t.plan.steps_in(0)} in the first epoch, batch {t.cfg.batch_size}", flush=True)
        reached = False
        try:
            t.fit()
        except _Reached:
            reached = True
    first = clock.epochs[-1] if reached else None
    return {"preset": PRESET, "device": DEVICE, "precision": t.precision,
            "target_miou": target, "reached": reached,
            "setup_s": setup_s, "max_steps": max_steps, "val_every": val_every,
            "total_steps": clock.total_steps, "epochs": clock.epochs,
            "best_miou": max((e["val_miou"] for e in clock.epochs
                              if e["val_miou"] is not None), default=None),
            "wall_s": first["wall_s"] if first else None,
            "train_s": first["train_s"] if first else None,
            "step": first["step"] if first else None}


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    preset_batch = train_defaults(PRESET)["batch_size"]
    parser.add_argument("--batches", default=str(preset_batch),
                        help=f"batch sizes, comma-separated (the preset's is {preset_batch})")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--train-to-miou", type=float, default=None, metavar="MIOU",
                        help="also train with fit() until val mIoU reaches this (~7 min)")
    parser.add_argument("--val-every", type=int, default=100,
                        help="with --train-to-miou: steps between validations")
    parser.add_argument("--keep-run", type=Path, default=None, metavar="DIR",
                        help="with --train-to-miou: write the run folder here and keep it")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="with --train-to-miou: stop after this many steps (a smoke test)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="as `sera train --precision` (default: auto, what it runs)")
    common.add_timing_arguments(parser, budget=30.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.repeats = str(preset_batch), 3
    data_root = ensure_synthetic()

    rows = []
    for b in sorted(int(b) for b in args.batches.split(",")):
        rows.append(measure_steps(b, data_root, args))
        common.release_memory()
    common.print_table(
        f"Training steps ({PRESET}, {DEVICE}, {torch.get_num_threads()} threads, "
        f"--precision {args.precision}: {rows[0]['precision']}): "
        f"ms per step after {args.warmup} warm-up steps; data = fetching the next batch "
        "(workers=0, augmentation on), compute = Trainer._train_step (forward, loss, backward, "
        "clip, Adam); batch sizes one after another; peak = process RSS, added = over the built "
        "trainer",
        ["preset", "batch", "steps", "data ms", "compute ms", "min ms", "max ms", "samples/s",
         "compute samples/s", "peak MiB", "added MiB"],
        [[r["preset"], r["batch"], r["steps"] - args.warmup, 1e3 * r["data"].median,
          1e3 * r["compute"].median, 1e3 * r["step"].min, 1e3 * r["step"].max,
          r["samples_per_s"], r["compute_samples_per_s"], r["peak_mib"], r["added_mib"]]
         for r in rows])
    headline: dict[str, Any] = {}
    for r in rows:
        headline[f"{PRESET} b{r['batch']} training samples/s ({DEVICE})"] = \
            f"{r['samples_per_s']:.1f}"
        headline[f"{PRESET} b{r['batch']} training peak MiB"] = f"{r['peak_mib']:.0f}"
    result: dict[str, Any] = {"rows": rows, "headline": headline}

    if args.train_to_miou is not None:
        fit = train_to_miou(args.train_to_miou, data_root, args.val_every, args.max_steps,
                            args.keep_run, args.precision)
        common.print_table(
            f"Time to val mIoU {fit['target_miou']:g}: {PRESET}, preset defaults, {DEVICE}, "
            f"{fit['precision']}, "
            f"{torch.get_num_threads()} threads; wall = since fit() started (model already "
            "built), training = wall less every validation (evaluation + checkpoint save); "
            f"validation every {fit['val_every']} steps and at each epoch's end"
            + ("" if fit["max_steps"] is None else f"; cut at --max-steps {fit['max_steps']}"),
            ["step", "val mIoU", "wall s", "training s", "validation s", "reached"],
            [[e["step"], e["val_miou"], e["wall_s"], e["train_s"], e["validation_s"],
              e["val_miou"] is not None and e["val_miou"] >= fit["target_miou"]]
             for e in fit["epochs"]])
        key = f"{PRESET} time to val mIoU {fit['target_miou']:g}"
        headline[key] = (f"{fit['wall_s']:.0f} s wall, {fit['train_s']:.0f} s training"
                         if fit["reached"] else f"not reached (best {fit['best_miou']})")
        result["train_to_miou"] = fit
    common.write_results("training", result)
    return result


if __name__ == "__main__":
    main()
