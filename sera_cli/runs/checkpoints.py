"""Run directories: ``config.json`` (rebuilds the model alone) plus ``model.safetensors``.

Only trained parameters are saved (adapters, experts, neck, decoder, tuned biases and
LayerNorms); frozen pretrained weights are reloaded from their source. A randomly initialized
backbone has no source, so it is always saved whole. Every write is atomic and nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sera_cli import __version__
from sera_cli.errors import SeraError
from sera_cli.runs.atomic import atomic_write

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def saved_state(model: Any, full: bool = False) -> dict[str, Any]:
    """The tensors a run must keep to rebuild ``model`` exactly on top of its sources."""
    from sera_cli.model.peft import backbones

    cfg = model.cfg
    random_init = {"vision.dinov2": cfg.vision.hub_id is None,
                   "text.tower": cfg.text.pretrained is None}
    keep_whole = [p for p in backbones(model) if full or random_init[p]]
    frozen_backbone = [p for p in backbones(model) if p not in keep_whole]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    state = {}
    for name, tensor in model.state_dict().items():
        in_frozen = any(name.startswith(p + ".") for p in frozen_backbone)
        if not in_frozen or name in trainable:
            state[name] = tensor.detach().contiguous().cpu()
    return state


def plugin_provenance(model: Any, registry: Any) -> dict[str, Any]:
    """Which plugin distribution (and version) provided each expert and router the model uses,
    so that loading the run without it can name the package to install."""
    return {use.label: registry.provenance(registry.spec(use)) for use in model.cfg.used_plugins()}


def save_run(run_dir: str | Path, model: Any, registry: Any = None, full: bool = False,
             extra: dict[str, Any] | None = None, weights_file: str = WEIGHTS_FILE) -> Path:
    """Write ``config.json`` and the weights file; returns the run directory."""
    from safetensors.torch import save

    from sera_cli.registry import default_registry

    run = Path(run_dir)
    registry = registry or default_registry()
    config = {
        "format_version": FORMAT_VERSION,
        "sera_version": __version__,
        "model": model.cfg.to_dict(),
        "plugins": plugin_provenance(model, registry),
        "full_weights": full,
    }
    # These keys describe this save: ``extra`` (a loaded run's own config.json) never overrides
    config.update({k: v for k, v in (extra or {}).items() if k not in config})
    atomic_write(run / weights_file, save(saved_state(model, full)))
    atomic_write(run / CONFIG_FILE, json.dumps(config, indent=2))
    return run


def read_config(run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    if not run.is_dir():
        raise SeraError(f"checkpoint folder {run} does not exist (or is not a folder)")
    path = run / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise SeraError(f"{path} is missing: {run} is not a sera run folder") from None
    except OSError as exc:
        raise SeraError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise SeraError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise SeraError(f"{path} has no 'model' section: not a sera run config")
    version = config.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise SeraError(f"{path} has an invalid format_version {version!r}; the file was "
                        "edited or damaged")
    if version > FORMAT_VERSION:
        raise SeraError(f"{path} has format version {version}, newer than this sera "
                        f"({__version__}) reads ({FORMAT_VERSION}); upgrade sera")
    from sera_cli.config.model import migrate_renamed

    config["model"] = migrate_renamed(config["model"], str(path))  # runs of sera 0.1
    _check_model_section(config["model"], path)
    return config


def _check_model_section(model: dict[str, Any], path: Path) -> None:
    """The 'model' section must rebuild a valid ModelConfig; a hand-edited or damaged value is
    named with the file here rather than failing deep inside model construction."""
    from sera_cli.config import ModelConfig
    from sera_cli.config.loader import check_fields

    check_fields(ModelConfig, model, str(path), "model.")
    try:
        ModelConfig.from_dict(model).validate()
    except SeraError as exc:
        raise SeraError(f"{path}: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise SeraError(f"{path} has a malformed 'model' section ({exc}); the file was edited "
                        "or damaged") from None


def _check_plugins(config: dict[str, Any], registry: Any, where: Path) -> None:
    """Every plugin the run uses is registered, or the error names the package to install."""
    from sera_cli.config import ModelConfig

    provenance = config.get("plugins")
    provenance = provenance if isinstance(provenance, dict) else {}
    for use in ModelConfig.from_dict(config["model"]).used_plugins():
        if registry.has(use):
            continue
        origin = provenance.get(use.label)
        origin = origin if isinstance(origin, dict) else {}
        dist = origin.get("distribution")
        hint = (f"install the plugin package '{dist}' ({origin.get('version')}): pip install "
                f"{dist}" if dist else f"load the plugin module '{origin.get('plugin', '?')}'"
                " with sera -p MODULE")
        kind = f"{use.stage} expert" if use.kind == "expert" else "router"
        raise SeraError(f"checkpoint {where} needs {kind} '{use.name}', which is not registered; "
                        f"{hint}")


def read_weights(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise SeraError(f"{path} is missing: the run has no saved weights" if not path.exists()
                        else f"{path} is not a file: the run's weights must be a safetensors file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SeraError(f"{path} is not a readable safetensors file ({exc}); "
                        "it may be truncated") from None


def load_into(model: Any, state: dict[str, Any], source: Path) -> None:
    """Load a saved state, naming the first key whose shape does not fit."""
    ours = model.state_dict()
    for key, tensor in state.items():
        if key not in ours:
            raise SeraError(f"{source}: tensor '{key}' does not exist in the model built from "
                            "its config.json")
        if tuple(tensor.shape) != tuple(ours[key].shape):
            raise SeraError(f"{source}: tensor '{key}' has shape {tuple(tensor.shape)}, the "
                            f"model expects {tuple(ours[key].shape)}")
    expected = saved_state(model, full=False).keys()
    missing = [k for k in expected if k not in state]
    if missing:
        raise SeraError(f"{source} lacks tensor '{missing[0]}' ({len(missing)} missing)")
    model.load_state_dict(state, strict=False)


def init_from_run(model: Any, source: Path, heads: bool = True, registry: Any = None) -> int:
    """Copy a trained run's weights into ``model`` before training starts: its backbones always
    (the pretrained part of a transfer), its other modules too unless ``heads`` is False.

    Every copied tensor must exist in ``model`` with the same shape, so a run of another preset
    or width is refused naming the tensor. Returns how many tensors were copied."""
    from sera_cli.model.peft import backbones

    source_model, _ = load_run(source, registry)
    theirs, ours = source_model.state_dict(), model.state_dict()
    prefixes = tuple(f"{name}." for name in backbones(model))
    wanted = {k: v for k, v in theirs.items() if heads or k.startswith(prefixes)}
    for key, tensor in wanted.items():
        if key not in ours:
            raise SeraError(f"--init-from {source}: tensor '{key}' has no place in this model "
                            "(another preset or other experts); use --no-init-heads to take "
                            "the backbones only")
        if tuple(tensor.shape) != tuple(ours[key].shape):
            raise SeraError(f"--init-from {source}: tensor '{key}' has shape "
                            f"{tuple(tensor.shape)}, this model's is {tuple(ours[key].shape)}: "
                            "the runs' presets or widths differ")
    if not any(k.startswith(prefixes) for k in wanted):
        raise SeraError(f"--init-from {source}: its weights hold no backbone tensor")
    model.load_state_dict(wanted, strict=False)
    return len(wanted)


def load_run(run_dir: str | Path, registry: Any = None, vision_weights: str | None = None,
             text_weights: str | None = None, weights_file: str = WEIGHTS_FILE,
             model_cls: Any = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model from ``config.json`` and load its weights; returns (model, config).
    ``model_cls``: the SeraModel subclass to build (build_model's)."""
    from sera_cli.config import ModelConfig
    from sera_cli.model.sera import build_model
    from sera_cli.registry import default_registry

    run = Path(run_dir)
    config = read_config(run)
    registry = registry or default_registry()
    _check_plugins(config, registry, run)
    state = read_weights(run / weights_file)
    cfg = ModelConfig.from_dict(config["model"])
    if config.get("full_weights"):  # everything is in the file: do not fetch pretrained weights
        cfg.vision.hub_id, cfg.text.pretrained = None, None
    # Every tensor comes from the file (or the weights given): plain backbones need no
    # transformers or open_clip import, which is most of a cold `sera predict`.
    model = build_model(cfg, registry, vision_weights, text_weights, model_cls,
                        plain_backbones=True)
    load_into(model, state, run / weights_file)
    model.eval()
    return model, config
