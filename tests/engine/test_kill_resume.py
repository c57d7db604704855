"""Faults lose nothing: a killed run resumes from its last complete checkpoint, and a failed write
(full disk, unwritable folder) leaves the previous checkpoint whole and no temporary file."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import builtin_registry, metrics_records
from safetensors.torch import load_file

from sera_cli.config.layering import build_configs
from sera_cli.engine.training import Trainer
from sera_cli.errors import SeraError
from sera_cli.runs import atomic as checkpoint
from sera_cli.runs.atomic import atomic_write
from sera_cli.runs.checkpoints import load_run
from sera_cli.runs.folders import ensure_writable, last_checkpoint

REGISTRY = builtin_registry()


def _full_disk(*args: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


# ----------------------------------------------------------------------------- atomic writes


def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    target = tmp_path / "model.safetensors"
    atomic_write(target, b"old weights")
    monkeypatch.setattr(checkpoint.os, "fsync", _full_disk)
    with pytest.raises(SeraError, match=f"cannot write {target}: No space left on device; its "
                                        "previous version, if any, is unchanged"):
        atomic_write(target, b"new weights, half written")
    assert target.read_bytes() == b"old weights"
    assert _leftovers(tmp_path) == []


def test_write_into_an_unusable_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SeraError, match=f"cannot write {blocker / 'run' / 'config.json'}"):
        atomic_write(blocker / "run" / "config.json", "{}")


def test_run_folder_is_checked_before_training(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SeraError, match=f"cannot write to the run folder {blocker / 'run'}.*"
                                        "--out"):
        ensure_writable(blocker / "run")
    ensure_writable(tmp_path / "run", min_free=1)
    assert list((tmp_path / "run").iterdir()) == []  # the probe file is gone

    class Usage:
        free = 5 * 2**20

    monkeypatch.setattr("sera_cli.runs.folders.shutil.disk_usage", lambda _: Usage)
    with pytest.raises(SeraError, match="has 5 MiB free, a checkpoint needs about 64 MiB"):
        ensure_writable(tmp_path / "run", min_free=64 * 2**20)


def test_resume_point_is_named_when_missing_or_damaged(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(SeraError, match="does not exist"):
        last_checkpoint(run)
    run.mkdir()
    with pytest.raises(SeraError, match="no checkpoint to resume from.*before its first"):
        last_checkpoint(run)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last").write_text("../../elsewhere\n")
    with pytest.raises(SeraError, match="names '../../elsewhere', which is not a checkpoint"):
        last_checkpoint(run)
    (run / "checkpoints" / "step-00000002").mkdir()
    (run / "checkpoints" / "last").write_text("step-00000002\n")
    assert last_checkpoint(run) == run / "checkpoints" / "step-00000002"


class _DiskFillsAt:
    """Reporter that makes every fsync fail from a chosen step on, as a disk filling up would."""

    def __init__(self, step: int, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at, self.monkeypatch = step, monkeypatch

    def start(self, total_steps: int, done: int) -> None: ...
    def validated(self, result: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...

    def step(self, logs: dict[str, Any]) -> None:
        if logs["step"] == self.at:
            self.monkeypatch.setattr(checkpoint.os, "fsync", _full_disk)


def test_disk_full_mid_run_keeps_the_last_checkpoint(tmp_path: Path, synth_data_root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    model_cfg, train_cfg = build_configs({"preset": "sera-tiny", "data": str(synth_data_root),
                                          "batch_size": 4, "max_steps": 3, "save_every": 1,
                                          "log_every": 1})
    trainer = Trainer(model_cfg, train_cfg, run, synth_data_root, registry=REGISTRY,
                      reporter=_DiskFillsAt(3, monkeypatch))
    with pytest.raises(SeraError, match="cannot write .*step-00000003.*No space left on device"):
        trainer.fit()
    assert last_checkpoint(run).name == "step-00000002"
    assert _leftovers(run) == []
    monkeypatch.undo()  # space is freed: the kept checkpoint loads and the run resumes
    load_run(last_checkpoint(run), REGISTRY)
    resumed = Trainer(model_cfg, train_cfg, run, synth_data_root, registry=REGISTRY)
    resumed.resume()
    assert resumed.step == 2
    assert resumed.fit()["steps"] == 3


def test_resume_after_a_kill_that_tore_a_metrics_line(tmp_path: Path, synth_data_root: Path
                                                      ) -> None:
    run = tmp_path / "run"
    model_cfg, train_cfg = build_configs({"preset": "sera-tiny", "data": str(synth_data_root),
                                          "batch_size": 4, "max_steps": 2, "save_every": 1,
                                          "log_every": 1})
    Trainer(model_cfg, train_cfg, run, synth_data_root, registry=REGISTRY).fit()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 0.7')  # SIGKILL in the middle of a line
    resumed = Trainer(model_cfg, train_cfg, run, synth_data_root, registry=REGISTRY)
    resumed.resume()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 2]


def test_resume_clears_what_a_kill_left_half_written(tmp_path: Path, synth_data_root: Path
                                                     ) -> None:
    run = tmp_path / "run"
    model_cfg, train_cfg = build_configs({"preset": "sera-tiny", "data": str(synth_data_root),
                                          "batch_size": 4, "max_steps": 2, "save_every": 1})
    Trainer(model_cfg, train_cfg, run, synth_data_root, registry=REGISTRY).fit()
    kept = last_checkpoint(run)
    torn = [run / ".metrics.jsonl.x1.tmp", run / "checkpoints" / ".last.x2.tmp"]
    for path in torn:
        path.write_text("half")
    unfinished = run / "checkpoints" / "step-00000009"
    unfinished.mkdir()
    (unfinished / "model.safetensors").write_bytes(b"torn")
    Trainer(model_cfg, train_cfg, run, synth_data_root, registry=REGISTRY).resume()
    assert not any(path.exists() for path in torn) and not unfinished.exists()
    assert last_checkpoint(run) == kept and kept.is_dir()


def test_a_misspelt_expert_fails_before_the_data_is_read(tmp_path: Path) -> None:
    model_cfg, train_cfg = build_configs({"preset": "sera-tiny"})
    model_cfg.experts = ["spatail"]
    with pytest.raises(SeraError, match="unknown fusion expert 'spatail'"):
        Trainer(model_cfg, train_cfg, tmp_path / "run", tmp_path / "no-data", registry=REGISTRY)


# ---------------------------------------------------------------------------------- SIGKILL


def _sera(*args: str) -> list[str]:
    return [sys.executable, "-m", "sera_cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "SERA_LOAD_PLUGINS": "builtin", "SERA_DEBUG": ""}


def _kill_mid_write(process: subprocess.Popen[str], run: Path, after_step: int,
                    timeout: float = 300) -> str:
    """Wait until the run has checkpointed `after_step`, then SIGKILL it as soon as a checkpoint
    file is half written (a temporary file exists), or after one more step at the latest.
    Returns the checkpoint folder the pointer named just before the kill."""
    pointer = run / "checkpoints" / "last"
    deadline = time.monotonic() + timeout
    while not (pointer.is_file() and pointer.read_text() >= f"step-{after_step:08d}"):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never checkpointed"
        time.sleep(0.02)
    seen = pointer.read_text()
    while not _leftovers(run / "checkpoints"):
        if pointer.read_text() > seen:  # a whole step went by between two polls
            break
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return seen


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_runs_to_the_end(tmp_path: Path,
                                                     synth_data_root: Path) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(
        _sera("train", "--data", str(synth_data_root), "--batch-size", "4", "--save-every", "1",
              "--max-steps", "40", "--out", str(run)),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _kill_mid_write(process, run, after_step=2)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL

    # the pointer names a complete checkpoint, whatever the kill interrupted
    folder = last_checkpoint(run)
    step = int(folder.name.split("-")[1])
    assert 2 <= step < 40
    _, config = load_run(folder, REGISTRY)
    assert config["train"]["max_steps"] == 40
    assert json.loads((folder / "train_state.json").read_text())["step"] == step
    assert load_file(folder / "train_state.safetensors")

    resumed = subprocess.run(_sera("train", "--resume", str(run), "--json"), env=_env(),
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["steps"] == 40
    assert metrics_records(run)[-1]["step"] == 40
    assert last_checkpoint(run).name == "step-00000040"
    assert (run / "model.safetensors").is_file() and _leftovers(last_checkpoint(run)) == []
