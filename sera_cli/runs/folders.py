"""Run folders: where a new run goes, which run is the latest, and checks before writing."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from sera_cli.errors import SeraError

ENV_RUNS = "SERA_RUNS"
LATEST = "latest"
CHECKPOINTS = "checkpoints"  # run/checkpoints/step-N/ folders
LAST = "last"  # run/checkpoints/last: a file naming the newest complete step folder
METRICS_FILE = "metrics.jsonl"  # run/metrics.jsonl: one JSON line per log step and validation


def runs_root() -> Path:
    return Path(os.environ.get(ENV_RUNS, "runs"))


def new_run_dir(root: Path, preset: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run = root / f"{stamp}-{preset}"
    n = 1
    while run.exists():
        n += 1
        run = root / f"{stamp}-{preset}-{n}"
    return run


def ensure_writable(folder: Path, min_free: int = 0) -> None:
    """Fail before a long run starts, not at its first checkpoint: the folder must take a file,
    and hold ``min_free`` more bytes (a checkpoint's size, when the caller knows it)."""
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(b"0" * 4096)
        finally:
            probe.unlink(missing_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise SeraError(f"cannot write to the run folder {folder}: {exc.strerror or exc}; "
                        "choose another with --out") from None
    if free < min_free:
        raise SeraError(f"the run folder {folder} has {free / 2**20:.0f} MiB free, a checkpoint "
                        f"needs about {min_free / 2**20:.0f} MiB; free disk space or choose "
                        "another with --out")


def last_checkpoint(run: Path) -> Path:
    """The step folder that ``run/checkpoints/last`` names: the one ``--resume`` continues from.

    The pointer is switched only once its folder is written whole, so after a crash it names a
    complete checkpoint (its config.json holds the run's model and training configs)."""
    if not run.is_dir():
        raise SeraError(f"run folder {run} does not exist (or is not a folder); give --resume "
                        "the --out folder of the run")
    pointer = run / CHECKPOINTS / LAST
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        raise SeraError(f"{run} has no checkpoint to resume from ({pointer} is missing): the "
                        "run stopped before its first checkpoint; start it again") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SeraError(f"cannot read {pointer}: {exc}") from None
    folder = run / CHECKPOINTS / name
    if not name or name in (".", "..") or "/" in name or "\\" in name or not folder.is_dir():
        raise SeraError(f"{pointer} names {name!r}, which is not a checkpoint folder in "
                        f"{run / CHECKPOINTS}")
    return folder


def mark_latest(run: Path) -> None:
    """Point ``<root>/latest`` at ``run`` (a relative symlink, replaced atomically)."""
    link = run.parent / LATEST
    tmp = run.parent / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run.name, tmp)
    os.replace(tmp, link)


def resolve_run(checkpoint: str | Path | None, root: Path | None = None) -> Path:
    """The run a command uses: ``--checkpoint`` if given, else the latest run under the root."""
    if checkpoint is not None:
        return Path(checkpoint)
    root = root or runs_root()
    link = root / LATEST
    if not link.exists():
        raise SeraError(f"no trained run found ({link} does not exist); train one with "
                        "`sera train` or `sera demo`, or pass --checkpoint RUN")
    return link.resolve()
