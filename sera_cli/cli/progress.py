"""Rich progress for long work, on stderr so that --json output stays clean on stdout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

err = Console(stderr=True)


def bar(description: str = "", quiet: bool = False) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, disable=quiet, transient=False)


def synthetic_data(quiet: bool = False) -> Path:
    """The default data set's root, with a progress bar only while its first use writes it."""
    from sera_cli.data.default import cached_synthetic, ensure_synthetic

    cached = cached_synthetic()
    if cached is not None:
        return cached
    with bar(quiet=quiet) as progress:
        task = progress.add_task("synthetic data", total=None, info="first use")
        return ensure_synthetic(lambda done, total: progress.update(task, completed=done,
                                                                    total=total))


class TrainProgress:
    """The training loop's Reporter drawn as a rich progress bar with loss, lr and speed."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("train", total=1, info="")

    def start(self, total_steps: int, done: int) -> None:
        self.progress.update(self.task, total=total_steps, completed=done)

    def step(self, logs: dict[str, Any]) -> None:
        info = (f"loss {logs['loss']:.4f}  lr {logs['lr']:.2e}  "
                f"{logs['samples_per_s']:.1f} samples/s")
        self.progress.update(self.task, completed=logs["step"], info=info)

    def validated(self, result: dict[str, Any]) -> None:
        self.progress.console.print(
            f"val {result['split']}: mIoU {result['miou']:.2f}  oIoU {result['oiou']:.2f}  "
            f"P@0.5 {result['prec@0.5']:.2f}  ({result['n']} samples)")

    def note(self, text: str) -> None:
        self.progress.console.print(text)


def progress_factory(progress: Progress, prefix: str = "") -> Callable[[str, int],
                                                                       Callable[[int], None]]:
    """The engine's ProgressFactory drawn as one bar per piece of work on ``progress``."""

    def factory(label: str, total: int) -> Callable[[int], None]:
        task = progress.add_task(f"{prefix}{label}", total=total, info="")
        return lambda n: progress.advance(task, n)

    return factory
