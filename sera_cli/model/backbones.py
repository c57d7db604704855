"""The frozen encoders: DINOv2 (transformers) for vision, the CLIP text tower (open_clip).

Both are built from their config classes, so ``sera-tiny`` uses the very classes of ``sera-b``
at a small size, and the loading code that reads pretrained weights is the one tests exercise.

Pretrained weights carry their own description: a transformers folder's ``config.json``
(``model_type`` dinov2 or dinov2_with_registers, widths, layers), open_clip's model config with
the pretrained tag (the tag says whether the weights were trained with QuickGELU), or a hub
folder's ``open_clip_config.json``. ``match_weights`` makes a new run's backbone sections what
its weights are; ``build_dinov2`` and ``build_clip_text`` refuse weights that differ from the
config they are given, in one line naming both, and a missing or unexpected tensor is an error.
So no model is ever built on weights of another architecture: a plain DINOv2 does not become a
registers model with zero register tokens, nor a LAION CLIP a QuickGELU one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sera_cli.config import ModelConfig, TextConfig, VisionConfig
from sera_cli.errors import SeraError
from sera_cli.model.towers import PlainDinov2, PlainTextTransformer
from sera_cli.model.weights import (
    ENV_TEXT,
    ENV_VISION,
    explicit_source,
    hub_file,
    hub_file_if_any,
    source_label,
)

VISION_OPTION = f"pass --vision-weights PATH (or set {ENV_VISION})"
TEXT_OPTION = f"pass --text-weights PATH (or set {ENV_TEXT})"
#: transformers' model_type -> VisionConfig.arch, and the class each arch is built with.
DINOV2_TYPES = {"dinov2": "dinov2", "dinov2_with_registers": "dinov2-reg"}
DINOV2_CLASS_NAMES = {"dinov2": "Dinov2Model", "dinov2-reg": "Dinov2WithRegistersModel"}
#: The file names open_clip gives a CLIP on the hub (open_clip.push_to_hf_hub), safest first.
CLIP_CONFIG = "open_clip_config.json"
CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_HUB_PREFIX = "hf-hub:"  # TextConfig.pretrained "hf-hub:ORG/REPO", open_clip's own spelling
#: Keys of a full CLIP state dict that are not the text tower's.
_CLIP_NOT_TEXT = ("visual.", "logit_scale", "logit_bias")
#: open_clip CLIPTextCfg fields sera's text tower ignores (used only by towers it never builds).
_TEXT_CFG_IGNORED = {"output_tokens", "eos_id", "hf_model_pretrained", "hf_proj_type",
                     "hf_pooler_type"}


def _dinov2_classes(arch: str) -> tuple[Any, Any]:
    from transformers import (
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
    )

    classes = {"dinov2-reg": (Dinov2WithRegistersConfig, Dinov2WithRegistersModel),
               "dinov2": (Dinov2Config, Dinov2Model)}
    if arch not in classes:
        raise SeraError(f"unknown vision arch '{arch}'; known: {', '.join(classes)}")
    return classes[arch]


def _vision_shape(cfg: VisionConfig) -> dict[str, Any]:
    """What must agree between a VisionConfig and its weights (a plain DINOv2 has no
    registers, whatever ``register_tokens`` says)."""
    return {"arch": cfg.arch, "register_tokens": cfg.register_tokens if cfg.arch == "dinov2-reg"
            else 0, "hidden_size": cfg.hidden_size, "layers": cfg.layers, "heads": cfg.heads,
            "patch_size": cfg.patch_size}


def _vision_source(cfg: VisionConfig, weights: str | None, files: tuple[str, ...]
                   ) -> tuple[Path, str]:
    """The folder holding the DINOv2 weights (the user's, else the hub snapshot with ``files``)
    and how messages name it."""
    source = explicit_source(weights, ENV_VISION, "--vision-weights")
    if source is not None:
        return source, f"{source_label(weights, ENV_VISION, '--vision-weights')} {source}"
    if cfg.hub_id is None:
        raise SeraError("the vision config names no hub_id and no --vision-weights was given")
    paths = [hub_file(cfg.hub_id, [name], "DINOv2 weights", VISION_OPTION) for name in files]
    return paths[0].parent, f"DINOv2 weights '{cfg.hub_id}'"


def _read_vision_config(folder: Path, label: str) -> dict[str, Any]:
    """The architecture a transformers DINOv2 folder holds, from its config.json."""
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SeraError(f"{label} has no config.json: pass a folder written by transformers' "
                        "save_pretrained") from None
    except (OSError, ValueError) as exc:
        raise SeraError(f"{label}: cannot read {path} ({exc})") from None
    arch = DINOV2_TYPES.get(str(data.get("model_type"))) if isinstance(data, dict) else None
    if arch is None:
        held = data.get("model_type") if isinstance(data, dict) else None
        raise SeraError(f"{label} holds a '{held}' model, not DINOv2 (model_type "
                        f"{' or '.join(DINOV2_TYPES)})")
    config = _dinov2_classes(arch)[0].from_dict(data)  # fields the file omits take defaults
    return _vision_shape(VisionConfig(arch=arch, hub_id=None, hidden_size=config.hidden_size,
                                      layers=config.num_hidden_layers,
                                      heads=config.num_attention_heads,
                                      patch_size=config.patch_size,
                                      register_tokens=getattr(config, "num_register_tokens", 0)))


def _show(values: dict[str, Any], keys: list[str]) -> str:
    def one(key: str, value: Any) -> str:
        if key == "arch":
            return f"arch {value} ({DINOV2_CLASS_NAMES.get(value, '?')})"
        if key == "quick_gelu":
            return f"quick_gelu {str(value).lower()} ({'QuickGELU' if value else 'GELU'})"
        return f"{key} {value}"

    return ", ".join(one(k, values[k]) for k in keys)


def _refuse_other(expected: dict[str, Any], found: dict[str, Any], label: str) -> None:
    """One line naming every field where the weights differ from what the run expects."""
    differ = [k for k in expected if expected[k] != found[k]]
    if differ:
        raise SeraError(f"{label}: the run expects {_show(expected, differ)}; the weights hold "
                        f"{_show(found, differ)}")


def _refuse_partial(info: dict[str, Any], label: str, class_name: str) -> None:
    """transformers only warns when tensors are missing or left over: here that is an error."""
    for kind in ("missing", "unexpected", "mismatched"):
        keys = sorted(str(k[0] if isinstance(k, tuple) else k)
                      for k in info.get(f"{kind}_keys") or ())
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            raise SeraError(f"{label}: {kind} tensor '{keys[0]}'{more} when loading it as "
                            f"{class_name}: the checkpoint is not that model")
    if info.get("error_msgs"):
        raise SeraError(f"{label}: {' '.join(str(info['error_msgs'][0]).split())}")


def build_dinov2(cfg: VisionConfig, image_size: int, weights: str | None = None,
                 plain: bool = False) -> nn.Module:
    """A DINOv2 model: random init when the config names no weights, else pretrained weights of
    exactly the configured architecture (refused in one line otherwise). ``plain``: with no
    weights, ``towers.PlainDinov2`` (uninitialized, for a caller that loads a state dict next)
    instead of the transformers class."""
    if weights is None and cfg.hub_id is None and plain:
        return PlainDinov2(cfg, image_size)
    config_cls, model_cls = _dinov2_classes(cfg.arch)
    if weights is None and cfg.hub_id is None:
        extra = {"num_register_tokens": cfg.register_tokens} if cfg.arch == "dinov2-reg" else {}
        config = config_cls(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
                            num_attention_heads=cfg.heads, intermediate_size=4 * cfg.hidden_size,
                            patch_size=cfg.patch_size, image_size=image_size, **extra)
        return model_cls(config)
    folder, label = _vision_source(cfg, weights, ("config.json", "model.safetensors"))
    _refuse_other(_vision_shape(cfg), _read_vision_config(folder, label), label)
    try:
        model, info = model_cls.from_pretrained(folder, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise SeraError(f"{label}: cannot load it ({' '.join(str(exc).split())[:200]})"
                        ) from None
    _refuse_partial(info, label, DINOV2_CLASS_NAMES[cfg.arch])
    return model


def num_prefix_tokens(model: nn.Module) -> int:
    """CLS plus register tokens: dropped when tokens become a spatial grid. Read from the
    tensors, so that it holds for transformers' classes and ``towers.PlainDinov2`` alike."""
    registers = getattr(model.embeddings, "register_tokens", None)
    return 1 + (0 if registers is None else registers.shape[1])


def patch_size(model: nn.Module) -> int:
    """The side of a DINOv2 patch, from its patch-embedding convolution."""
    return int(model.embeddings.patch_embeddings.projection.kernel_size[0])


def _open_clip_tower(cfg: TextConfig) -> nn.Module:
    from open_clip.transformer import QuickGELU, TextTransformer

    act = QuickGELU if cfg.quick_gelu else nn.GELU
    return TextTransformer(context_length=cfg.context_length, vocab_size=cfg.vocab_size,
                           width=cfg.width, heads=cfg.heads, layers=cfg.layers,
                           output_dim=cfg.output_dim, act_layer=act)


class ClipText(nn.Module):
    """The CLIP text tower with hooks for adapters between its blocks.

    Returns word features (B, L, W) after the final LayerNorm, the sentence feature at the
    end-of-text token through the text projection (B, D), and the padding mask (B, L).
    """

    def __init__(self, cfg: TextConfig, tower: nn.Module | None = None) -> None:
        """``tower``: open_clip's TextTransformer built from ``cfg`` when None, else a module
        with its parts (``towers.PlainTextTransformer``)."""
        super().__init__()
        self.tower = tower if tower is not None else _open_clip_tower(cfg)
        self.cfg = cfg

    @property
    def blocks(self) -> nn.ModuleList:
        return self.tower.transformer.resblocks

    def forward(self, ids: torch.Tensor, adapters: nn.ModuleDict | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tower = self.tower
        length = ids.shape[1]
        x = tower.token_embedding(ids) + tower.positional_embedding[:length]  # (B, L, W)
        mask = tower.attn_mask[:length, :length]
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, attn_mask=mask)
            if adapters is not None and str(i) in adapters:
                x = adapters[str(i)](x)
        words = tower.ln_final(x)
        eot = ids.argmax(dim=-1)  # the end-of-text token has the largest id
        sentence = words[torch.arange(ids.shape[0], device=ids.device), eot]
        sentence = sentence @ tower.text_projection  # (B, W) -> (B, D)
        return words, sentence, ids == 0

    def load_clip_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load the text keys of a full CLIP state dict, cutting positions to the context.
        The vision tower's keys are left out; any other key the tower lacks is an error."""
        ours = self.tower.state_dict()
        text = {k: v for k, v in state.items() if not k.startswith(_CLIP_NOT_TEXT)}
        unexpected = sorted(set(text) - set(ours))
        if unexpected:
            raise SeraError(f"{source}: unexpected tensor {unexpected[0]} (and "
                            f"{len(unexpected) - 1} more): not a CLIP checkpoint for this text "
                            "tower")
        if "positional_embedding" in text:
            text["positional_embedding"] = text["positional_embedding"][: self.cfg.context_length]
        missing = sorted(set(ours) - set(text))
        if missing:
            raise SeraError(f"{source} is not a CLIP checkpoint for this text tower: missing "
                            f"{missing[0]} (and {len(missing) - 1} more)")
        for key, value in text.items():
            if value.shape != ours[key].shape:
                raise SeraError(f"{source}: tensor {key} has shape {tuple(value.shape)}, the "
                                f"text tower expects {tuple(ours[key].shape)}")
        self.tower.load_state_dict(text)


def read_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A weights file as tensors, never unpickling code (safetensors, or torch weights_only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SeraError(f"cannot read weights file {path}: {exc}") from exc
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _text_shape(cfg: TextConfig) -> dict[str, Any]:
    """What must agree between a TextConfig and its weights."""
    return {"width": cfg.width, "layers": cfg.layers, "heads": cfg.heads,
            "output_dim": cfg.output_dim, "vocab_size": cfg.vocab_size,
            "quick_gelu": cfg.quick_gelu}


@dataclass
class ClipSource:
    """CLIP weights and what they are: the open_clip model config (``embed_dim``, ``text_cfg``,
    ``quick_gelu``) and where the weights file is, a local file or a hub repository's."""

    label: str  # how messages name them
    model_cfg: dict[str, Any]
    file: Path | None = None
    repo_id: str | None = None
    filenames: tuple[str, ...] = field(default=CLIP_WEIGHTS)

    def shape(self) -> tuple[dict[str, Any], int]:
        """(the fields of ``_text_shape``, the number of positions the weights hold); a text
        tower sera does not build is refused, naming the setting."""
        from open_clip.model import CLIPTextCfg

        text_cfg = self.model_cfg.get("text_cfg") or {}
        known = {f.name: f.default for f in dataclasses.fields(CLIPTextCfg)}
        sizes = {"context_length", "vocab_size", "width", "heads", "layers"}
        for key, value in text_cfg.items():
            if key not in known or (key not in sizes | _TEXT_CFG_IGNORED and value != known[key]):
                raise SeraError(f"{self.label}: its text tower sets {key}={value!r}, which sera's "
                                "CLIP text tower does not build")
        if self.model_cfg.get("custom_text"):
            raise SeraError(f"{self.label}: a custom text tower (custom_text), which sera's CLIP "
                            "text tower does not build")
        text = {**{k: known[k] for k in sizes}, **text_cfg}
        shape = {"width": text["width"], "layers": text["layers"], "heads": text["heads"],
                 "output_dim": self.model_cfg.get("embed_dim"),
                 "vocab_size": text["vocab_size"],
                 "quick_gelu": bool(self.model_cfg.get("quick_gelu", False))}
        return shape, int(text["context_length"])

    def weights_file(self) -> Path:
        if self.file is not None:
            return self.file
        assert self.repo_id is not None
        return hub_file(self.repo_id, self.filenames, "CLIP text weights", TEXT_OPTION)


def clip_source(cfg: TextConfig, weights: str | None) -> ClipSource:
    """What the CLIP weights of ``cfg`` (or the user's ``weights``) are, from their config alone
    (the weights are fetched later): a local folder or file with open_clip_config.json beside
    it; an "hf-hub:ORG/REPO" repository's open_clip_config.json; or an open_clip pretrained tag,
    whose repository's open_clip_config.json gives the sizes (open_clip's model config when the
    repository, or offline the cache, has none) and whose own entry says QuickGELU or GELU."""
    source = explicit_source(weights, ENV_TEXT, "--text-weights")
    if source is not None:
        return _local_clip(source, f"{source_label(weights, ENV_TEXT, '--text-weights')} {source}")
    tag = cfg.pretrained or ""
    if tag.startswith(HF_HUB_PREFIX):
        repo = tag[len(HF_HUB_PREFIX):].strip("/")
        config = hub_file(repo, [CLIP_CONFIG], "CLIP text weights", TEXT_OPTION)
        return ClipSource(f"CLIP text weights '{repo}'", _clip_model_cfg(config), repo_id=repo)
    import open_clip

    pretrained = open_clip.get_pretrained_cfg(cfg.model, tag)
    if not pretrained:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(cfg.model)) or "none"
        raise SeraError(f"open_clip has no pretrained tag '{tag}' for {cfg.model}; its tags: "
                        f"{known}; or use {HF_HUB_PREFIX}ORG/REPO; or {TEXT_OPTION}")
    hub = pretrained.get("hf_hub", "")
    if not hub:
        raise SeraError(f"open_clip's {cfg.model}/{tag} has no hub repository: download its "
                        f"weights, then {TEXT_OPTION}")
    # open_clip's form: "org/name/" (its default file names) or "org/name/file.bin"
    repo, filename = (hub.rstrip("/"), "") if hub.endswith("/") else os.path.split(hub)
    repo_config = hub_file_if_any(repo, CLIP_CONFIG, "CLIP text weights", TEXT_OPTION)
    model_cfg = _clip_model_cfg(repo_config) if repo_config else dict(
        open_clip.get_model_config(cfg.model) or {})
    model_cfg["quick_gelu"] = bool(pretrained.get("quick_gelu", False))  # the tag's word wins
    names = (_safetensors_name(filename), filename) if filename else CLIP_WEIGHTS
    return ClipSource(f"CLIP text weights '{cfg.model}/{tag}' ({repo})", model_cfg,
                      repo_id=repo, filenames=names)


def _safetensors_name(filename: str) -> str:
    """open_clip's rule: a .bin or .pth file may have a .safetensors twin, preferred."""
    if filename == "open_clip_pytorch_model.bin":
        return "open_clip_model.safetensors"
    return str(Path(filename).with_suffix(".safetensors"))


def _local_clip(source: Path, label: str) -> ClipSource:
    folder = source if source.is_dir() else source.parent
    config = folder / CLIP_CONFIG
    if not config.is_file():
        raise SeraError(f"{label}: no {CLIP_CONFIG} beside the weights, so sera cannot tell "
                        "their architecture (GELU or QuickGELU, sizes): pass the folder as the "
                        f"hub stores it ({CLIP_CONFIG} with {CLIP_WEIGHTS[0]})")
    file = source
    if source.is_dir():
        found = [folder / n for n in CLIP_WEIGHTS if (folder / n).is_file()]
        found = found or sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        if not found:
            raise SeraError(f"{label}: the folder holds no .safetensors or .bin weights")
        file = found[0]
    return ClipSource(label, _clip_model_cfg(config), file=file)


def _clip_model_cfg(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SeraError(f"cannot read {path} ({exc})") from None
    model_cfg = data.get("model_cfg") if isinstance(data, dict) else None
    if not isinstance(model_cfg, dict):
        raise SeraError(f"{path} has no 'model_cfg' table: not an open_clip config")
    return model_cfg


def _check_positions(cfg: TextConfig, positions: int, label: str) -> None:
    if cfg.context_length > positions:
        raise SeraError(f"{label}: context_length {cfg.context_length} is longer than the "
                        f"{positions} positions the weights hold; use --context-length "
                        f"{positions} or less")


def build_clip_text(cfg: TextConfig, weights: str | None = None, plain: bool = False
                    ) -> ClipText:
    """A CLIP text tower: random init when the config names no weights, else pretrained weights
    of exactly the configured architecture (refused in one line otherwise). ``plain``: with no
    weights, on ``towers.PlainTextTransformer`` (uninitialized) instead of open_clip's class."""
    if cfg.pretrained is None and weights is None:
        return ClipText(cfg, PlainTextTransformer(cfg) if plain else None)
    model = ClipText(cfg)
    source = clip_source(cfg, weights)
    found, positions = source.shape()
    _refuse_other(_text_shape(cfg), found, source.label)
    _check_positions(cfg, positions, source.label)
    path = source.weights_file()
    model.load_clip_state(read_state_file(path), f"{source.label} ({path.name})")
    return model


def match_weights(cfg: ModelConfig, vision_weights: str | None = None,
                  text_weights: str | None = None) -> ModelConfig:
    """A copy of ``cfg`` whose backbone sections are what the pretrained weights are (class,
    registers, activation, widths, layers), for a new run to record in its config.json; the
    sources and the context length stay the run's. Only the weights' configs are read here;
    the weights themselves are fetched when the model is built."""
    vision, text = cfg.vision, cfg.text
    if vision_weights is not None or vision.hub_id is not None:
        folder, label = _vision_source(vision, vision_weights, ("config.json",))
        vision = dataclasses.replace(vision, **_read_vision_config(folder, label))
    if text_weights is not None or text.pretrained is not None:
        source = clip_source(text, text_weights)
        found, positions = source.shape()
        text = dataclasses.replace(text, **found)
        _check_positions(text, positions, source.label)
    matched = copy.deepcopy(cfg)
    matched.vision, matched.text = vision, text
    try:
        return matched.validate()
    except SeraError as exc:  # e.g. adapter blocks past the layers the weights have
        raise SeraError(f"{exc}, as the pretrained weights are") from None
