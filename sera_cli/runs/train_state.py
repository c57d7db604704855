"""Resumable training state without pickle: optimizer tensors and RNG in safetensors, the rest
in JSON. With the data order derived from (seed, epoch), this is all a resume needs to continue
exactly where the run stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sera_cli.errors import SeraError
from sera_cli.runs.atomic import atomic_write

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def save_train_state(run: Path, optimizer: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    from safetensors.torch import save

    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    plain: dict[str, Any] = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                plain[f"{index}.{key}"] = value
    meta = {**info, "param_groups": state["param_groups"], "optim_plain": plain}
    atomic_write(run / STATE_TENSORS, save(tensors))
    atomic_write(run / STATE_JSON, json.dumps(meta, indent=2))


def load_train_state(run: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer and torch's RNG; returns the saved info (step, epoch, best...)."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((run / STATE_JSON).read_text())
        tensors = load_file(str(run / STATE_TENSORS))
    except FileNotFoundError as exc:
        raise SeraError(f"{run} has no training state ({Path(exc.filename).name} missing): "
                        "it cannot be resumed") from None
    except Exception as exc:
        raise SeraError(f"the training state in {run} is unreadable ({exc})") from None
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    for key, value in meta.pop("optim_plain").items():
        index, name = key.split(".", 1)
        slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta.pop("param_groups")})
    torch.set_rng_state(tensors["rng.torch"])
    return meta
