"""The model's configuration as plain dataclasses: a run's config.json rebuilds its model alone.

Field names are the command-line option names (``--topk`` sets ``topk``, ``--z-loss`` sets
``loss.z_loss``), so an option is found by its name and no table translates between the two.
The values of each preset live in ``presets/*.json`` beside this module.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from sera_cli.config.loader import from_dict
from sera_cli.errors import RenamedKeyWarning, SeraError

# CLIP's normalization, which DETRIS also applies to DINOv2's input.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TUNE_MODES = ("bias-ln", "frozen", "full")

#: Keys that config.json files written by sera 0.1 used, and the fields they are now. Old runs
#: keep loading: each old key is read as its new name with a RenamedKeyWarning.
RENAMED_KEYS: dict[str, str] = {
    "fusion_experts": "experts",
    "fusion_router": "router",
    "top_k": "topk",
    "loss.z": "loss.z_loss",
    "loss.balance": "loss.balance_loss",
    "loss.assignment": "loss.assignment_loss",
}


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
    """The CLIP text tower through open_clip; ``pretrained`` None means random init, else an
    open_clip pretrained tag of ``model`` or "hf-hub:ORG/REPO" (an open_clip hub folder)."""

    #: The fields a run sets one at a time (``--context-length``); the others describe the
    #: weights, so they come from the preset and from the weights themselves.
    SETTABLE: ClassVar[tuple[str, ...]] = ("context_length",)

    model: str = "ViT-B-16"
    pretrained: str | None = "openai"
    width: int = 512
    layers: int = 12
    heads: int = 8
    output_dim: int = 512
    vocab_size: int = 49408
    context_length: int = 17
    quick_gelu: bool = True  # OpenAI's CLIP weights were trained with QuickGELU


#: Word length (``context_length``) per data set, as the reference code trains (DETRIS, after
#: CRIS): RefCOCOg's expressions are longer. A data set not listed keeps the preset's (17).
CONTEXT_LENGTHS = {"refcoco": 17, "refcoco+": 17, "refcocog": 22}


@dataclass
class LossConfig:
    """Weights of the loss terms; the routing regularizers are summed over every router."""

    bce: float = 1.0
    dice: float = 0.0
    z_loss: float = 1e-3
    balance_loss: float = 1e-2
    assignment_loss: float = 1e-2
    no_target_loss: float = 1.0  # BCE of the no-target head (a model with one)


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
    experts: list[str] = field(default_factory=lambda: ["spatial", "context", "boundary",
                                                        "shape"])  # SERA-Fusion's
    router: str = "topk"  # SERA-Fusion's
    topk: int = 4
    # Routers also see the expression (its sentence feature, projected and added to the map they
    # pool); off, they see pooled visual features only, as in the paper (docs/ablation.md).
    sentence_routing: bool = False
    decoder_layers: int = 3
    decoder_heads: int = 8
    decoder_ffn: int = 512
    projector_dim: int | None = None  # channels after the first upsampling; None: fusion_dim
    # A head that says "this expression names nothing" (ReLA's, for gRefCOCO). None: decided when
    # training starts, on when the training split has no-target expressions (config.json then
    # records true or false); configs written before it existed load as None, built without.
    no_target_head: bool | None = None
    loss: LossConfig = field(default_factory=LossConfig)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.vision.patch_size

    def validate(self) -> ModelConfig:
        """Reject inconsistent values where they enter, naming the option."""
        if self.tune not in TUNE_MODES:
            raise SeraError(f"--tune '{self.tune}' is not one of {', '.join(TUNE_MODES)}")
        for option, names in (("--experts", self.experts),
                              ("--adapter-experts", self.adapter_experts)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise SeraError(f"{option} names {', '.join(dupes)} more than once")
        n = len(self.experts)
        if n and not 1 <= self.topk <= n:
            raise SeraError(f"--topk {self.topk} is out of range: choose 1 to {n} "
                            f"for {n} fusion expert(s)")
        layers = self.vision.layers
        for option, blocks in (("--adapter-blocks", self.adapter_blocks),
                               ("neck_blocks", self.neck_blocks)):
            bad = [b for b in blocks if not 1 <= b <= layers]
            if bad:
                raise SeraError(f"{option} {bad} outside the backbone's blocks 1..{layers}")
        if self.text.context_length < 3:
            raise SeraError(f"--context-length {self.text.context_length} is too short: it needs "
                            "room for start, one token and end of text")
        if self.vision.patch_size < 1 or self.image_size < 1:
            raise SeraError(f"image_size {self.image_size} and patch_size "
                            f"{self.vision.patch_size} must both be positive")
        if self.image_size % self.vision.patch_size:
            raise SeraError(f"image_size {self.image_size} is not a multiple of the patch size "
                            f"{self.vision.patch_size}")
        return self

    def used_plugins(self) -> list[PluginUse]:
        """Every expert and router this model is built from, in build order.

        The one answer to "which plugins does this config need": model building, checkpoint
        provenance and the up-front checks all ask it. A router behind no experts is not built,
        so it is not used.
        """
        uses = [PluginUse("expert", "adapter", n) for n in self.adapter_experts]
        uses += [PluginUse("expert", "fusion", n) for n in self.experts]
        if self.adapter_experts:
            uses.append(PluginUse("router", "adapter", self.adapter_router))
        if self.experts:
            uses.append(PluginUse("router", "fusion", self.router))
        return uses

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model") -> ModelConfig:
        return from_dict(cls, migrate_renamed(data, where), where)


@dataclass(frozen=True)
class PluginUse:
    """One expert or router a config names: ``kind`` expert|router, ``stage`` adapter|fusion."""

    kind: str
    stage: str
    name: str

    @property
    def label(self) -> str:
        """The key checkpoints record its provenance under: "fusion expert shape", "router topk"."""
        return f"{self.stage} expert {self.name}" if self.kind == "expert" else \
            f"router {self.name}"


def migrate_renamed(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of a 'model' section with the keys of sera 0.1 renamed, and one warning naming
    them all."""
    out = dict(data)
    renamed = []
    for old, new in RENAMED_KEYS.items():
        *section, old_key = old.split(".")
        new_key = new.split(".")[-1]
        table = out
        if section:
            if not isinstance(out.get(section[0]), dict):
                continue
            table = out[section[0]] = dict(out[section[0]])
        if old_key in table:
            if new_key in table:
                raise SeraError(f"{where}: both '{old}' (the old name) and '{new}' are set; "
                                "keep one")
            table[new_key] = table.pop(old_key)
            renamed.append(f"'{old}' is read as '{new}'")
    if renamed:
        warnings.warn(f"{where}: {', '.join(renamed)} (their names since sera 0.2)",
                      RenamedKeyWarning, stacklevel=3)
    return out
