"""The frozen encoders: DINOv2 (transformers) for vision, the CLIP text tower (open_clip).

Both are built from their config classes, so ``sera-tiny`` uses the very classes of ``sera-b``
at a small size, and the loading code that reads pretrained weights is the one tests exercise.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sera_cli.config import TextConfig, VisionConfig
from sera_cli.errors import SeraError
from sera_cli.model.weights import (
    ENV_TEXT,
    ENV_VISION,
    explicit_source,
    hub_reachable,
    missing_weights,
)


def _dinov2_classes(arch: str) -> tuple[type, type]:
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


def build_dinov2(cfg: VisionConfig, image_size: int, weights: str | None = None) -> nn.Module:
    """A DINOv2 model: random init when the config names no weights, else pretrained."""
    config_cls, model_cls = _dinov2_classes(cfg.arch)
    if weights is None and cfg.hub_id is None:
        extra = {"num_register_tokens": cfg.register_tokens} if cfg.arch == "dinov2-reg" else {}
        config = config_cls(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
                            num_attention_heads=cfg.heads, intermediate_size=4 * cfg.hidden_size,
                            patch_size=cfg.patch_size, image_size=image_size, **extra)
        return model_cls(config)
    source = explicit_source(weights, ENV_VISION, "--vision-weights")
    name = str(source or cfg.hub_id)
    try:
        if source is not None:
            return model_cls.from_pretrained(source)
        try:
            return model_cls.from_pretrained(name, local_files_only=True)
        except OSError:
            if not hub_reachable():
                raise missing_weights("DINOv2", name, "--vision-weights", ENV_VISION,
                                      "not in the local cache and the hub is unreachable"
                                      ) from None
            return model_cls.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise missing_weights("DINOv2", name, "--vision-weights", ENV_VISION,
                              str(exc).splitlines()[0]) from exc


def num_prefix_tokens(model: nn.Module) -> int:
    """CLS plus register tokens: dropped when tokens become a spatial grid."""
    return 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)


class ClipText(nn.Module):
    """The CLIP text tower with hooks for adapters between its blocks.

    Returns word features (B, L, W) after the final LayerNorm, the sentence feature at the
    end-of-text token through the text projection (B, D), and the padding mask (B, L).
    """

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        from open_clip.transformer import QuickGELU, TextTransformer

        act = QuickGELU if cfg.quick_gelu else nn.GELU
        self.tower = TextTransformer(context_length=cfg.context_length, vocab_size=cfg.vocab_size,
                                     width=cfg.width, heads=cfg.heads, layers=cfg.layers,
                                     output_dim=cfg.output_dim, act_layer=act)
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
        """Load the text keys of a full CLIP state dict, cutting positions to the context."""
        ours = self.tower.state_dict()
        picked = {k: v for k, v in state.items() if k in ours}
        if "positional_embedding" in picked:
            positions = picked["positional_embedding"]
            picked["positional_embedding"] = positions[: self.cfg.context_length]
        missing = sorted(set(ours) - set(picked))
        if missing:
            raise SeraError(f"{source} is not a CLIP checkpoint for this text tower: missing "
                            f"{missing[0]} (and {len(missing) - 1} more)")
        for key, value in picked.items():
            if value.shape != ours[key].shape:
                raise SeraError(f"{source}: tensor {key} has shape {tuple(value.shape)}, the "
                                f"text tower expects {tuple(ours[key].shape)}")
        self.tower.load_state_dict(picked)


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


def _clip_weights_file(cfg: TextConfig, weights: str | None) -> Path:
    source = explicit_source(weights, ENV_TEXT, "--text-weights")
    if source is not None:
        if source.is_dir():
            found = sorted(source.glob("*.safetensors")) + sorted(source.glob("*.bin"))
            if not found:
                raise SeraError(f"--text-weights folder {source} holds no .safetensors or .bin")
            return found[0]
        return source
    import open_clip

    name = f"{cfg.model}/{cfg.pretrained}"
    pretrained_cfg = open_clip.get_pretrained_cfg(cfg.model, cfg.pretrained or "")
    if not pretrained_cfg:
        raise SeraError(f"open_clip has no pretrained tag '{cfg.pretrained}' for {cfg.model}")
    hub = pretrained_cfg.get("hf_hub", "").rstrip("/")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            cached = try_to_load_from_cache(hub, filename)
            if isinstance(cached, str):
                return Path(cached)
    if not hub_reachable():
        raise missing_weights("CLIP text", name, "--text-weights", ENV_TEXT,
                              "not in the local cache and the hub is unreachable")
    try:
        return Path(open_clip.pretrained.download_pretrained(pretrained_cfg))
    except Exception as exc:
        raise missing_weights("CLIP text", name, "--text-weights", ENV_TEXT, str(exc)) from exc


def build_clip_text(cfg: TextConfig, weights: str | None = None) -> ClipText:
    """A CLIP text tower: random init when the config names no weights, else pretrained."""
    model = ClipText(cfg)
    if cfg.pretrained is None and weights is None:
        return model
    path = _clip_weights_file(cfg, weights)
    model.load_clip_state(read_state_file(path), str(path))
    return model
