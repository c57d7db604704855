"""Where the model runs: the one reading of ``--device`` and ``--precision``, and the process
group under torchrun."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from sera_cli.config.train import PRECISIONS
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


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware: CUDA, or a CPU with AMX or
    AVX512-BF16 (read from the CPU's feature flags through torch's cpuinfo). Elsewhere bf16 is
    emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported()
                                     or torch.cpu._is_avx512_bf16_supported())


#: What ``auto`` trains in on a CPU with fast bf16: float32, but for the projector under bf16
#: autocast (see ``resolve_precision``).
PROJECTOR_BF16 = "bf16-projector"


def resolve_precision(precision: str, device: torch.device, training: bool = False) -> str:
    """``--precision`` as fp32, bf16 or, for ``auto`` training on a CPU, ``PROJECTOR_BF16``.
    ``auto`` is bf16 where the device has fast bf16 (see ``fast_bf16``) and fp32 elsewhere,
    except for training on a CPU: there bf16 runs sera-tiny's projector, full-resolution
    convolutions, twice as fast, while elsewhere in the step autocast's casts cost about what
    bf16 saves; so only the projector autocasts (docs/performance.md). An explicit bf16 is
    refused where it would only be emulated."""
    if precision not in PRECISIONS:
        raise SeraError(f"--precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    fast = fast_bf16(device)
    if precision == "auto":
        if not fast:
            return "fp32"
        return PROJECTOR_BF16 if training and device.type == "cpu" else "bf16"
    if precision == "bf16" and not fast:
        raise SeraError(f"--precision bf16 needs a CUDA device or a CPU with AMX or "
                        f"AVX512-BF16, and {device.type} has neither: use fp32")
    return precision


def autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast when asked (a float32 model, as in training, whose master weights stay
    float32); float32 otherwise."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def lower(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """``model`` for inference in ``precision``: bf16 converts its weights outright, which runs
    faster than autocast (no cast of the weights at every forward, no cast between operations);
    its inputs then go in as ``dtype_of(model)``."""
    return model.to(torch.bfloat16) if precision == "bf16" else model


def dtype_of(model: torch.nn.Module) -> torch.dtype:
    """The floating-point type ``model``'s weights are in: what its pixels must be (float32 for a
    model without weights)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


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
