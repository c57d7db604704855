"""Run folders: where a new run goes, which run is the latest, and checks before writing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sera_cli.errors import SeraError

ENV_RUNS = "SERA_RUNS"
LATEST = "latest"


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


def ensure_writable(folder: Path) -> None:
    """Fail before a long run starts, not at its first checkpoint."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise SeraError(f"cannot write to the run folder {folder}: {exc.strerror or exc}; "
                        "choose another with --out") from None


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
                        "`sera train` or pass --checkpoint RUN")
    return link.resolve()
