"""Presets as data (``presets/<name>.json``, as open_clip keeps model configs): each file holds
the values that differ from the ModelConfig and TrainConfig defaults, under "model" and "train",
and under "datasets" the training values for one data set. A new preset is a new file; nothing
here switches on a preset's name."""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import cache
from importlib import resources
from typing import Any

from sera_cli.config.model import ModelConfig
from sera_cli.config.train import TrainConfig
from sera_cli.errors import SeraError

DEFAULT_PRESET = "sera-tiny"


def preset_names() -> list[str]:
    folder = resources.files("sera_cli.config") / "presets"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


@cache
def _read(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise SeraError(f"unknown preset '{name}'; known presets: {', '.join(preset_names())}")
    text = (resources.files("sera_cli.config") / "presets" / f"{name}.json").read_text()
    data = json.loads(text)
    unknown = set(data) - {"_about", "model", "train", "datasets"}
    if unknown:  # "dataset" for "datasets" would otherwise be ignored
        raise SeraError(f"preset {name}: unknown section(s) {', '.join(sorted(unknown))}")
    return data


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(
            base.get(key), dict) else value
    return out


def preset(name: str) -> ModelConfig:
    """A fresh ModelConfig of preset ``name``."""
    model = _merged(asdict(ModelConfig()), {**_read(name)["model"], "preset": name})
    return ModelConfig.from_dict(model, f"preset {name}")


def train_defaults(name: str, dataset: str | None = None) -> dict[str, Any]:
    """The TrainConfig values preset ``name`` sets (what a bare `sera train --preset` uses).

    Its "datasets" table adds values for one data set (``dataset``, or else the preset's own):
    a schedule measured on one kind of data need not suit another, and generalized data, with
    its no-target and multi-target expressions, trains differently (docs/performance.md)."""
    data = _read(name)
    per_dataset = data.get("datasets", {})
    for entry in ({}, *per_dataset.values()):  # a bad preset file fails here, naming the key,
        TrainConfig.from_dict({**data["train"], **entry})  # whatever the data trained on
    values = dict(data["train"])
    values.update(per_dataset.get(dataset or values.get("dataset", TrainConfig.dataset), {}))
    return values
