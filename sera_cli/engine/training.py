"""The training loop: single process or DistributedDataParallel under torchrun.

Resumable to the same result: the data order and augmentation are functions of (seed, epoch,
sample), the model's own randomness comes from torch's RNG saved with each checkpoint, and each
checkpoint is a folder written whole before a pointer is switched to it.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch

from sera_cli.config import ModelConfig, TrainConfig
from sera_cli.engine.devices import PROJECTOR_BF16, autocast, resolve_precision, setup_distributed
from sera_cli.engine.schedule import EpochPlan, lr_factor, optimizer_groups
from sera_cli.errors import SeraError, TrainingInterrupted
from sera_cli.runs.atomic import atomic_write
from sera_cli.runs.checkpoints import load_into, read_weights, save_run
from sera_cli.runs.folders import CHECKPOINTS, LAST, METRICS_FILE
from sera_cli.runs.train_state import load_train_state, save_train_state


class Reporter(Protocol):
    """What the loop tells its caller (the CLI draws a progress bar from it)."""

    def start(self, total_steps: int, done: int) -> None: ...
    def step(self, logs: dict[str, Any]) -> None: ...
    def validated(self, result: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...


class _Silent:
    def start(self, total_steps: int, done: int) -> None: ...
    def step(self, logs: dict[str, Any]) -> None: ...
    def validated(self, result: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...


@contextmanager
def stop_on_interrupt() -> Iterator[dict[str, bool]]:
    """First Ctrl-C (or SIGTERM) asks the loop to stop at the next step boundary, where the
    state is consistent; a second Ctrl-C interrupts at once."""
    flag = {"stop": False}
    handlers = {}

    def ask(signum: int, frame: Any) -> None:
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, ask)
    except ValueError:  # not the main thread: no handlers, plain behaviour
        pass
    try:
        yield flag
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _step_of(line: str) -> float:
    """The step of a metrics.jsonl line; infinity for a line that does not parse."""
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return math.inf


class Trainer:
    """One run: owns the model, optimizer, data and the run folder.

    Built in the order that fails fastest: the device and the run folder, then the expert and
    router names, then the data, and only then the model."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, run: Path, data_root: Path,
                 registry: Any = None, reporter: Reporter | None = None,
                 vision_weights: str | None = None, text_weights: str | None = None) -> None:
        from sera_cli.model.sera import resolve_plugins
        from sera_cli.registry import default_registry

        self.model_cfg, self.cfg, self.run = model_cfg, cfg.validate(), run
        self.registry = registry or default_registry()
        self.reporter = reporter or _Silent()
        self.dist = setup_distributed(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.dist.device, training=True)
        self.data_root = data_root
        if self.dist.main:
            from sera_cli.runs.folders import ensure_writable

            ensure_writable(run)  # before any slow work: fail now, not at the first checkpoint
        resolve_plugins(model_cfg, self.registry)  # a misspelt expert fails before the data loads
        if cfg.init_from:  # so does a missing or damaged source run
            from sera_cli.runs.checkpoints import read_config

            read_config(cfg.init_from)
        self._open_data()
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every resume
        from sera_cli.model.sera import build_model

        self.model = build_model(model_cfg, self.registry, vision_weights, text_weights)
        if cfg.init_from:
            from sera_cli.runs.checkpoints import init_from_run

            init_from_run(self.model, Path(cfg.init_from), cfg.init_heads, self.registry)
        self.model.to(self.dist.device)
        if self.precision == PROJECTOR_BF16:
            self.model.projector.autocast_dtype = torch.bfloat16
        self.optimizer, self.base_lrs = self._optimizer()
        self.step, self.best = 0, -1.0
        # training seconds before the fit() under way (None: none is): a resumed run's metrics
        # then give the run's whole training time, not the time since its last resume
        self.seconds_before = 0.0
        self.fit_began: float | None = None
        self.ddp_model = self._distributed()

    def _open_data(self) -> None:
        from sera_cli.data.dataset import dataset_for
        from sera_cli.data.refer import ReferIndex

        cfg = self.cfg
        index = ReferIndex.load(self.data_root, cfg.dataset, cfg.split_by, skip_bad=cfg.skip_bad)
        self.train_set = dataset_for(self.model_cfg, index, cfg.train_split, augment=cfg.augment,
                                     seed=cfg.seed)
        if self.model_cfg.no_target_head is None:  # decided here, then recorded in config.json
            self.model_cfg.no_target_head = any(s.no_target for s in self.train_set.samples)
        self.val_set = dataset_for(self.model_cfg, index, cfg.val_split)
        single = tuple(i for i, s in enumerate(self.train_set.samples) if len(s.ann_ids) == 1)
        self.plan = EpochPlan(len(self.train_set), single, cfg.single_target_epochs,
                              cfg.batch_size, self.dist.world)
        batch = f"one batch ({cfg.batch_size} x {self.dist.world} processes); lower --batch-size"
        if self.plan.steps_in(self.plan.single_epochs) == 0:
            raise SeraError(f"split '{cfg.train_split}' has {len(self.train_set)} samples, fewer "
                            f"than {batch}")
        if self.plan.steps_in(0) == 0:
            raise SeraError(f"--single-target-fraction: split '{cfg.train_split}' has "
                            f"{len(single)} expressions naming one object, fewer than {batch} "
                            "or --single-target-fraction 0")
        self.total_steps = cfg.max_steps or self.plan.total(cfg.epochs)

    def _optimizer(self) -> tuple[torch.optim.Optimizer, list[float]]:
        groups = optimizer_groups(self.model, self.cfg)
        # fused: one kernel per step; on the CPU 3x faster than foreach, which matters for
        # sera-tiny's text embedding (3.2 M of its 4.1 M weights, updated every step).
        optimizer = torch.optim.Adam(groups, weight_decay=self.cfg.weight_decay, fused=True)
        return optimizer, [float(g["lr"]) for g in groups]

    def _distributed(self) -> torch.nn.Module:
        if self.dist.world == 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
        # Sparse top-k leaves unselected experts without gradients in a step.
        return DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)

    # -- run folder ------------------------------------------------------------------------------
    def _extra(self) -> dict[str, Any]:
        return {"train": asdict(self.cfg), "world_size": self.dist.world,
                "data": {"root": str(self.data_root.resolve())},
                "best": {"val_miou": self.best if self.best >= 0 else None}}

    def _log(self, record: dict[str, Any]) -> None:
        if self.dist.main:
            try:
                with open(self.run / METRICS_FILE, "a") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as exc:
                raise SeraError(f"cannot write {self.run / METRICS_FILE}: "
                                f"{exc.strerror or exc}; the last checkpoint is intact: free "
                                f"disk space, then sera train --resume {self.run}") from None

    def save_checkpoint(self, is_best: bool = False) -> None:
        """Write the step's folder whole, then switch the ``last`` pointer to it."""
        if not self.dist.main:
            return
        folder = self.run / CHECKPOINTS / f"step-{self.step:08d}"
        save_run(folder, self.model, self.registry, full=self.cfg.save_full,
                 extra=self._extra())
        save_train_state(folder, self.optimizer, {"step": self.step, "best": self.best,
                                                  "elapsed_s": self.elapsed_s()})
        atomic_write(self.run / CHECKPOINTS / LAST, folder.name)
        self._remove_checkpoints_but(folder)
        if is_best:
            from sera_cli.runs.folders import mark_latest

            save_run(self.run, self.model, self.registry, full=self.cfg.save_full,
                     extra=self._extra())
            mark_latest(self.run)

    def _remove_checkpoints_but(self, keep: Path) -> None:
        for folder in (self.run / CHECKPOINTS).glob("step-*"):
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)

    def resume(self) -> None:
        from sera_cli.runs.folders import last_checkpoint

        folder = last_checkpoint(self.run)
        load_into(self.model, read_weights(folder / "model.safetensors"), folder)
        if self.dist.main:  # what a kill left half-written: temporary files, unfinished steps
            for stale in [*self.run.glob(".*.tmp"), *(self.run / CHECKPOINTS).glob(".*.tmp")]:
                stale.unlink(missing_ok=True)
            self._remove_checkpoints_but(folder)
        info = load_train_state(folder, self.optimizer)
        self.step, self.best = int(info["step"]), float(info["best"])
        self.seconds_before = float(info.get("elapsed_s", 0.0))  # absent before 2026-12-07
        if self.dist.main and (self.run / METRICS_FILE).exists():  # drop lines past the resume
            kept = [ln for ln in (self.run / METRICS_FILE).read_text().splitlines()
                    if _step_of(ln) <= self.step]  # a line torn by a kill has no step: dropped
            atomic_write(self.run / METRICS_FILE, "".join(ln + "\n" for ln in kept))
        self.reporter.note(f"resumed {self.run} at step {self.step}")

    # -- loop ------------------------------------------------------------------------------------
    def _batches(self) -> Any:
        from torch.utils.data import DataLoader

        from sera_cli.data.dataset import collate

        epoch, offset = self.plan.locate(self.step)
        self.train_set.set_epoch(epoch)
        batches = self.plan.batches(epoch, self.cfg.seed, self.dist.rank)[offset:]
        return DataLoader(self.train_set, batch_sampler=batches, collate_fn=collate,
                          num_workers=self.cfg.workers,
                          persistent_workers=False, generator=torch.Generator().manual_seed(0))

    def validate(self) -> dict[str, Any] | None:
        from sera_cli.engine.evaluation import evaluate

        result = None
        if self.dist.main:
            result = evaluate(self.model, self.val_set, batch_size=self.cfg.val_batch_size,
                              threshold=self.cfg.threshold, device=self.dist.device,
                              precision=self.precision, workers=self.cfg.workers)
            is_best = result["miou"] is not None and result["miou"] > self.best
            if is_best:
                self.best = result["miou"]
            self._log({"step": self.step, "epoch": self.plan.epochs_done(self.step),
                       "elapsed_s": self.elapsed_s(),
                       "val": {k: v for k, v in result.items() if k != "routing"}})
            self.save_checkpoint(is_best=is_best)
            self.reporter.validated(result)
        self.dist.barrier()
        return result

    def elapsed_s(self) -> float:
        """Seconds this run has trained, over every process that resumed it."""
        running = 0.0 if self.fit_began is None else time.perf_counter() - self.fit_began
        return self.seconds_before + running

    def _mid_epoch_validation_due(self) -> bool:
        """Every --val-every steps, except where the epoch's end (or the run's) validates."""
        every = self.cfg.val_every
        return (bool(every) and self.step % every == 0 and self.step < self.total_steps
                and self.plan.locate(self.step)[1] != 0)

    def _train_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        from sera_cli.model.losses import sera_loss

        factor = lr_factor(self.cfg, self.step, self.total_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        device = self.dist.device
        with autocast(device, self.precision):
            out = self.ddp_model(batch["image"].to(device), batch["words"].to(device))
        loss, parts = sera_loss(out, batch["mask"].to(device), self.model_cfg.loss,
                                batch["no_target"])
        if not torch.isfinite(loss.detach()):
            raise SeraError(f"the loss became {float(loss.detach())} at step {self.step + 1}; "
                            f"training stopped and the last good checkpoint in {self.run} is "
                            "kept; lower --lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss.detach(), parts

    def _note_plan(self) -> None:
        """Say when --single-target-fraction does not do what it reads as: a fraction that
        rounds down to no epoch, or one-target epochs that outlast --max-steps."""
        plan, cfg = self.plan, self.cfg
        if cfg.single_target_fraction and not plan.single_epochs:
            self.reporter.note(f"--single-target-fraction {cfg.single_target_fraction:g} of "
                               f"{cfg.epochs} epochs rounds down to none: every epoch draws all "
                               "expressions")
        elif plan.single_epochs and plan.total(plan.single_epochs) >= self.total_steps:
            self.reporter.note(f"--single-target-fraction: all {self.total_steps} steps fall in "
                               f"the {plan.single_epochs} one-target epochs, so no no-target or "
                               "multi-target expression is drawn; raise --max-steps or lower "
                               "the fraction")

    def fit(self) -> dict[str, Any]:
        self.reporter.start(self.total_steps, self.step)
        self._note_plan()
        self.fit_began = time.perf_counter()
        self.ddp_model.train()
        last_val: dict[str, Any] | None = None
        seen, tick = 0, time.perf_counter()
        with stop_on_interrupt() as interrupt:
            while self.step < self.total_steps:
                for batch in self._batches():
                    loss, parts = self._train_step(batch)
                    seen += batch["image"].shape[0] * self.dist.world
                    if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
                        now = time.perf_counter()
                        logs = {"step": self.step, "epoch": self.plan.epochs_done(self.step),
                                "loss": float(loss), **parts,
                                "lr": self.optimizer.param_groups[0]["lr"],
                                "samples_per_s": seen / max(now - tick, 1e-9)}
                        seen, tick = 0, now
                        self._log(logs)
                        self.reporter.step(logs)
                    if self._mid_epoch_validation_due():
                        last_val = self.validate()  # which also saves a checkpoint
                    elif self.cfg.save_every and self.step % self.cfg.save_every == 0:
                        self.save_checkpoint()
                    if interrupt["stop"] or self.step >= self.total_steps:
                        break
                if interrupt["stop"]:
                    if self.plan.locate(self.step)[1] == 0 or self.step >= self.total_steps:
                        # the epoch (or the run) is complete: validate it as an uninterrupted
                        # run does, else the resumed run skips it and draws other random numbers
                        self.validate()
                    self.save_checkpoint()
                    raise TrainingInterrupted(f"interrupted at step {self.step}; state saved, "
                                              f"continue with: sera train --resume {self.run}",
                                              self.step)
                last_val = self.validate()
        seconds = time.perf_counter() - self.fit_began
        self.seconds_before, self.fit_began = self.elapsed_s(), None  # a later fit() adds to it
        return {"run": str(self.run), "steps": self.step, "best_val_miou": self.best,
                "seconds": seconds, "last_val": last_val}
