"""Two processes on Gloo, as torchrun launches them: they train together, rank 0 alone writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import metrics_records


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_train_and_only_rank0_writes(tmp_path: Path,
                                                        synth_data_root: Path) -> None:
    run = tmp_path / "runs" / "ddp"
    env = {**os.environ, "SERA_LOAD_PLUGINS": "builtin", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "sera_cli",
         "train", "--data", str(synth_data_root), "--max-steps", "3", "--batch-size", "2",
         "--log-every", "1", "--device", "cpu", "--out", str(run)],
        capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    records = metrics_records(run)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]  # one writer, no duplicates
    assert sum("val" in r for r in records) == 1
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.json",
                                                     "metrics.jsonl", "model.safetensors"]
    assert (run.parent / "latest").resolve() == run.resolve()


@pytest.mark.slow
def test_two_ranks_share_gradients_and_end_with_equal_weights(tmp_path: Path,
                                                              synth_data_root: Path) -> None:
    """Each rank sees other samples; only averaged gradients make their weights agree."""
    import torch.multiprocessing as mp
    from helpers import ddp_rank
    from safetensors.torch import load_file

    mp.spawn(ddp_rank, args=(2, _free_port(), str(synth_data_root), str(tmp_path)), nprocs=2)
    a, b = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert a.keys() == b.keys()
    assert any("fusion.router" in k for k in a)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
