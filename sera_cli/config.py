"""Model configs and presets as plain dataclasses: a run's config.json rebuilds its model alone.

``sera-b`` is the paper's model (DINOv2 ViT-B/14 with registers + CLIP ViT-B/16 text);
``sera-tiny`` is the same classes at CPU size, randomly initialized and trained fully, so the
whole pipeline runs and is tested without downloads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from sera_cli.errors import SeraError

# CLIP's normalization, which DETRIS also applies to DINOv2's input.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TUNE_MODES = ("bias-ln", "frozen", "full")


@dataclass
class VisionConfig:
    """DINOv2 through transformers; ``hub_id`` None means random init from these sizes."""

    arch: str = "dinov2-reg"  # "dinov2-reg" (Dinov2WithRegistersModel) or "dinov2" (Dinov2Model)
    hub_id: str | None = "facebook/dinov2-with-registers-base"
    hidden_size: int = 768
    layers: int = 12
    heads: int = 12
    patch_size: int = 14
    register_tokens: int = 4


@dataclass
class TextConfig:
    """The CLIP text tower through open_clip; ``pretrained`` None means random init."""

    model: str = "ViT-B-16"
    pretrained: str | None = "openai"
    width: int = 512
    layers: int = 12
    heads: int = 8
    output_dim: int = 512
    vocab_size: int = 49408
    context_length: int = 17
    quick_gelu: bool = True  # OpenAI's CLIP weights were trained with QuickGELU


@dataclass
class LossConfig:
    bce: float = 1.0
    dice: float = 0.0
    z: float = 1e-3
    balance: float = 1e-2
    assignment: float = 1e-2


@dataclass
class ModelConfig:
    preset: str = "sera-b"
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image_size: int = 448
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    tune: str = "bias-ln"
    adapter_blocks: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 10, 12])
    adapter_dim: int = 128
    adapter_scale: float = 0.2
    adapter_experts: list[str] = field(default_factory=lambda: ["spatial", "boundary"])
    adapter_router: str = "soft"
    text_adapter_dim: int = 64
    text_adapter_scale: float = 0.2
    neck_blocks: list[int] = field(default_factory=lambda: [4, 8])
    fusion_dim: int = 512
    fusion_experts: list[str] = field(default_factory=lambda: ["spatial", "context", "boundary",
                                                               "shape"])
    fusion_router: str = "topk"
    top_k: int = 4
    decoder_layers: int = 3
    decoder_heads: int = 8
    decoder_ffn: int = 512
    projector_dim: int | None = None  # channels after the first upsampling; None: fusion_dim
    loss: LossConfig = field(default_factory=LossConfig)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.vision.patch_size

    def validate(self) -> ModelConfig:
        """Reject inconsistent values where they enter, naming the option."""
        if self.tune not in TUNE_MODES:
            raise SeraError(f"--tune '{self.tune}' is not one of {', '.join(TUNE_MODES)}")
        for option, names in (("--experts", self.fusion_experts),
                              ("--adapter-experts", self.adapter_experts)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise SeraError(f"{option} names {', '.join(dupes)} more than once")
        n = len(self.fusion_experts)
        if n and not 1 <= self.top_k <= n:
            raise SeraError(f"--topk {self.top_k} is out of range: choose 1 to {n} "
                            f"for {n} fusion expert(s)")
        layers = self.vision.layers
        for option, blocks in (("--adapter-blocks", self.adapter_blocks),
                               ("neck_blocks", self.neck_blocks)):
            bad = [b for b in blocks if not 1 <= b <= layers]
            if bad:
                raise SeraError(f"{option} {bad} outside the backbone's blocks 1..{layers}")
        if self.image_size % self.vision.patch_size:
            raise SeraError(f"image_size {self.image_size} is not a multiple of the patch size "
                            f"{self.vision.patch_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return dataclass_from_dict(cls, data, "model")


def dataclass_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Strict construction: an unknown key is named rather than silently dropped."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SeraError(f"unknown key(s) in {where} config: {', '.join(unknown)}; "
                        f"known: {', '.join(fields)}")
    kwargs = {}
    for key, value in data.items():
        sub = {"vision": VisionConfig, "text": TextConfig, "loss": LossConfig}.get(key)
        if sub is not None and isinstance(value, dict):
            value = dataclass_from_dict(sub, value, f"{where}.{key}")
        elif key in ("mean", "std"):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _tiny() -> ModelConfig:
    return ModelConfig(
        preset="sera-tiny",
        vision=VisionConfig(hub_id=None, hidden_size=96, layers=4, heads=3, patch_size=8),
        text=TextConfig(pretrained=None, width=64, layers=2, heads=2, output_dim=64,
                        quick_gelu=False),
        image_size=128,
        tune="full",
        adapter_blocks=[2, 4],
        adapter_dim=32,
        text_adapter_dim=16,
        neck_blocks=[2, 3],
        fusion_dim=64,
        decoder_layers=1,
        decoder_heads=1,  # 64-wide heads as sera-b's 512 / 8: 4 of 16 learn no better, run slower
        decoder_ffn=128,
        loss=LossConfig(dice=1.0),
    )


def _large() -> ModelConfig:
    return ModelConfig(
        preset="sera-l",
        vision=VisionConfig(hub_id="facebook/dinov2-with-registers-large", hidden_size=1024,
                            layers=24, heads=16),
        adapter_blocks=[3, 7, 11, 15, 19, 23],
        neck_blocks=[8, 16],
    )


PRESETS = {"sera-b": ModelConfig, "sera-tiny": _tiny, "sera-l": _large}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise SeraError(f"unknown preset '{name}'; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]()
