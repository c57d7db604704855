"""Where the model runs: the one reading of ``--device`` and ``--precision``, and the process
group under torchrun."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from sera_cli.errors import SeraError


def resolve_device(name: str) -> torch.device:
    """``--device`` as a torch device: auto (CUDA when present, else the CPU), cpu, cuda or
    cuda:N; names torch does not know and absent GPUs are refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, TypeError):
        raise SeraError(f"--device '{name}' is not a device name; use auto, cpu or cuda "
                        "(cuda:N for one GPU)") from None
    if resolved.type not in ("cpu", "cuda"):
        raise SeraError(f"--device '{name}' is not supported; use auto, cpu or cuda")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SeraError(f"--device {name} was asked for, but no CUDA device is available; "
                        "use --device cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise SeraError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA "
                        "devices (cuda:0 and up)")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 on CUDA, fp32 elsewhere; bf16 is refused off CUDA."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16" and device.type != "cuda":
        raise SeraError("--precision bf16 needs a CUDA device; use fp32 on the CPU")
    return precision


def autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast on CUDA when asked; float32 elsewhere."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class Dist:
    """This process's place in a (possibly one-process) run."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def setup_distributed(device: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: NCCL on CUDA, Gloo on CPU."""
    resolved = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=resolved)
    cuda = resolved.type == "cuda"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return Dist(torch.distributed.get_rank(), world,
                torch.device(f"cuda:{local}" if cuda else "cpu"))
