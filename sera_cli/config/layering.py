"""A run's configuration from its layers: preset < the preset's training defaults (for the data
set trained on) < --config file < command-line options.

Every key is the name of the field it sets (dashes or underscores): a ModelConfig field, a field
of its ``loss`` section, a field its ``text`` section declares settable (``context_length``), or
a TrainConfig field. The map from name to field is read off the dataclasses, so a new field is an
option at once and no alias table can drift.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from sera_cli.config.loader import coerce, describe
from sera_cli.config.model import CONTEXT_LENGTHS, LossConfig, ModelConfig, TextConfig
from sera_cli.config.presets import DEFAULT_PRESET, preset, train_defaults
from sera_cli.config.train import TrainConfig
from sera_cli.errors import SeraError

#: Values that choose where things come from rather than set a field.
SOURCE_KEYS = {"preset", "out", "vision_weights", "text_weights"}
#: What `sera train --resume` applies from the command line: values that cannot change the run's
#: result. Any other value that differs from the run's own is refused, naming it.
RESUME_SAFE = {"workers", "log_every", "device"}


def _settable_fields() -> dict[str, tuple[type, str | None]]:
    """name -> (dataclass, section of ModelConfig or None). The sections that describe the
    backbones (vision, text) are fixed by the preset and the weights, except the fields a section
    declares in its ``SETTABLE``."""
    found: dict[str, tuple[type, str | None]] = {}
    for cls, section in ((ModelConfig, None), (LossConfig, "loss"), (TextConfig, "text"),
                         (TrainConfig, None)):
        settable = getattr(cls, "SETTABLE", None)
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            if f.name == "preset" or dataclasses.is_dataclass(hint) or (
                    settable is not None and f.name not in settable):
                continue
            if f.name in found:  # two fields answering to one option would be ambiguous
                raise AssertionError(f"field name '{f.name}' is used twice")
            found[f.name] = (cls, section)
    return found


FIELDS = _settable_fields()


def option(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def split_list(value: Any, name: str) -> list[Any]:
    """"a,b" or ["a", "b"] -> ["a", "b"]; "" -> [] (no experts)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    raise SeraError(f"{option(name)} takes a comma-separated list, got {value!r}")


def convert(name: str, value: Any) -> Any:
    """An option's value as the type of the field it sets ("a,b" lists split, numbers written
    as text read); raises ValueError saying what the option takes."""
    if value is None:
        return None
    if isinstance(value, Path):
        value = str(value)
    if name in SOURCE_KEYS:
        return value
    cls, _ = FIELDS[name]
    hint = typing.get_type_hints(cls)[name]
    if isinstance(value, str) and typing.get_origin(hint) is list:
        value = split_list(value, name)
    try:
        return coerce(value, hint, numbers_from_text=True)
    except ValueError:
        raise ValueError(describe(hint)) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """A flat table of field names to values, from TOML, YAML or JSON."""
    data = _parse(path)
    out = {}
    known = set(FIELDS) | SOURCE_KEYS
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


def _parse(path: Path) -> dict[str, Any]:
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
    return data


def build_configs(values: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """Apply the layered values (already merged, highest last) to the preset's configs.

    Each value is checked against the type of the field it sets, so a wrong one is named with
    its option. An unset --topk follows the number of fusion experts when the preset's is more
    than there are; an unset --context-length follows the data set (CONTEXT_LENGTHS)."""
    model = preset(values.get("preset") or DEFAULT_PRESET)
    train_values = train_defaults(model.preset, values.get("dataset"))
    for name, value in values.items():
        if value is None or name in SOURCE_KEYS:
            continue
        try:
            value = convert(name, value)
        except ValueError as exc:
            raise SeraError(f"{option(name)} takes {exc}, got {value!r}") from None
        cls, section = FIELDS[name]
        if cls is TrainConfig:
            train_values[name] = value
        else:
            setattr(getattr(model, section) if section else model, name, value)
    if values.get("topk") is None and model.experts:
        model.topk = min(model.topk, len(model.experts))
    if values.get("context_length") is None:
        dataset = train_values.get("dataset", TrainConfig.dataset)
        model.text.context_length = CONTEXT_LENGTHS.get(dataset, model.text.context_length)
    model.validate()
    return model, TrainConfig(**train_values).validate()


def changed_by(values: dict[str, Any], model: ModelConfig, train: TrainConfig) -> list[str]:
    """The names among ``values`` whose value differs from what ``model`` and ``train`` hold:
    what `sera train --resume` must not drop silently."""
    changed = ["preset"] if values.get("preset") not in (None, model.preset) else []
    for name, value in values.items():
        if name in SOURCE_KEYS or value is None:
            continue
        value = convert(name, value)
        cls, section = FIELDS[name]
        owner = train if cls is TrainConfig else (getattr(model, section) if section else model)
        if getattr(owner, name) != value:
            changed.append(name)
    return changed
