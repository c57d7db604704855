"""A run's configuration from its layers: preset < preset training defaults < --config file <
command-line options. Keys are the command-line option names (dashes or underscores)."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from sera_cli.config import LossConfig, ModelConfig, preset
from sera_cli.errors import SeraError
from sera_cli.train import TRAIN_PRESETS, TrainConfig
from sera_cli.values import coerce, describe

# Option name -> (section, field) for model options; every TrainConfig field is an option too.
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "experts": ("fusion_experts",),
    "adapter_experts": ("adapter_experts",),
    "topk": ("top_k",),
    "router": ("fusion_router",),
    "adapter_router": ("adapter_router",),
    "adapter_blocks": ("adapter_blocks",),
    "tune": ("tune",),
    "bce": ("loss", "bce"),
    "dice": ("loss", "dice"),
    "z_loss": ("loss", "z"),
    "balance_loss": ("loss", "balance"),
    "assignment_loss": ("loss", "assignment"),
}
LIST_OPTIONS = {"experts", "adapter_experts", "adapter_blocks", "milestones"}
OTHER_OPTIONS = {"preset", "out", "vision_weights", "text_weights"}
TRAIN_OPTIONS = {f.name for f in dataclasses.fields(TrainConfig)}


def split_list(value: Any, option: str) -> list[Any]:
    """"a,b" or ["a", "b"] -> ["a", "b"]; "" -> [] (no experts)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    raise SeraError(f"--{option.replace('_', '-')} takes a comma-separated list, got {value!r}")


def read_config_file(path: Path) -> dict[str, Any]:
    """A flat table of option names to values, from TOML, YAML or JSON."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SeraError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise SeraError(f"--config {path}: use a .toml, .yaml or .json file")
    except SeraError:
        raise
    except Exception as exc:  # parsers' messages span lines: keep the error on one
        raise SeraError(f"--config {path} cannot be parsed: {' '.join(str(exc).split())}"
                        ) from None
    if not isinstance(data, dict):
        raise SeraError(f"--config {path} must hold a table of option = value")
    out = {}
    known = set(MODEL_OPTIONS) | TRAIN_OPTIONS | OTHER_OPTIONS
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise SeraError(f"--config {path}: unknown key '{key}'; known keys: "
                            f"{', '.join(sorted(k.replace('_', '-') for k in known))}")
        try:
            out[name] = convert(name, value)
        except ValueError as exc:
            raise SeraError(f"--config {path}: '{key}' takes {exc}, got {value!r}") from None
    return out


def _option_type(name: str) -> Any:
    """The type an option's value must have, from the dataclass field it sets."""
    if name in MODEL_OPTIONS:
        path = MODEL_OPTIONS[name]
        owner = LossConfig if path[0] == "loss" else ModelConfig
        return typing.get_type_hints(owner)[path[-1]]
    if name in TRAIN_OPTIONS:
        return typing.get_type_hints(TrainConfig)[name]
    return str


def convert(name: str, value: Any) -> Any:
    """An option's value as the type of the field it sets ("a,b" lists split, numbers written
    as text read); raises ValueError saying what the option takes."""
    if value is None:
        return None
    if isinstance(value, Path):
        value = str(value)
    if name in LIST_OPTIONS and isinstance(value, str):
        value = split_list(value, name)
    hint = _option_type(name)
    try:
        return coerce(value, hint, numbers_from_text=True)
    except ValueError:
        raise ValueError(describe(hint)) from None


def build_configs(values: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Apply the layered values (already merged, highest last) to the preset's configs.

    Each value is checked against the type of the field it sets, so a wrong one is named with
    its option. An unset --topk follows the number of fusion experts when the preset's is more
    than there are."""
    model = preset(values.get("preset") or "sera-tiny")
    train_values = {**TRAIN_PRESETS.get(model.preset, {})}
    for name, value in values.items():
        if value is None or name in OTHER_OPTIONS:
            continue
        try:
            value = convert(name, value)
        except ValueError as exc:
            raise SeraError(f"--{name.replace('_', '-')} takes {exc}, got {value!r}") from None
        if name in MODEL_OPTIONS:
            path = MODEL_OPTIONS[name]
            target = model.loss if path[0] == "loss" else model
            setattr(target, path[-1], value)
        else:
            train_values[name] = value
    if values.get("topk") is None and model.fusion_experts:
        model.top_k = min(model.top_k, len(model.fusion_experts))
    model.validate()
    return model, TrainConfig(**train_values).validate()
