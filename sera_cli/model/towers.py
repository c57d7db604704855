"""DINOv2 and the CLIP text tower in plain torch, for a run whose weights are all in its own file.

Loading a trained run needs the function the backbones compute, not the code that builds and
loads their pretrained weights. Importing that code costs more than the model: transformers'
DINOv2 and open_clip's text tower pull in torchvision and ``torch._dynamo``, about 5 s of a cold
`sera predict` whose sera-tiny forward takes 40 ms (docs/performance.md). These modules compute
the same from the same tensors under the same parameter names, so a run's weights file loads into
either; tests/model/test_towers.py holds them equal to transformers' Dinov2Model and
Dinov2WithRegistersModel and to open_clip's TextTransformer, position embeddings resized to
another grid included.

Training always builds the upstream classes: their initialization is the one the figures in
docs/ come from, and their loading code is the one that reads pretrained weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sera_cli.config import TextConfig, VisionConfig

#: LayerNorm epsilons of the upstream configs (transformers' Dinov2Config, open_clip's towers).
DINOV2_EPS = 1e-6
CLIP_EPS = 1e-5


class _LayerScale(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class _PatchEmbeddings(nn.Module):
    def __init__(self, width: int, patch: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(3, width, patch, stride=patch)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # (B, 3, H, W) -> (B, N, W)
        return self.projection(pixels.to(self.projection.weight.dtype)).flatten(2).transpose(1, 2)


class _Embeddings(nn.Module):
    """CLS, position embeddings (resized bicubically to another grid), then registers after CLS."""

    def __init__(self, cfg: VisionConfig, image_size: int) -> None:
        super().__init__()
        width, patch = cfg.hidden_size, cfg.patch_size
        self.registers = cfg.register_tokens if cfg.arch == "dinov2-reg" else 0
        # transformers resizes with antialiasing for the registers model only
        self.antialias = cfg.arch == "dinov2-reg"
        self.patch = patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.mask_token = nn.Parameter(torch.zeros(1, width))  # unused: kept so the keys match
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, (image_size // patch) ** 2 + 1, width))
        if self.registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, self.registers, width))
        self.patch_embeddings = _PatchEmbeddings(width, patch)

    def _positions(self, height: int, width: int) -> torch.Tensor:
        table = self.position_embeddings
        side = int((table.shape[1] - 1) ** 0.5)
        if (height, width) == (side, side):
            return table
        grid = table[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(height, width), mode="bicubic",
                             align_corners=False, antialias=self.antialias).to(table.dtype)
        return torch.cat([table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, height * width, -1)],
                         dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        b = pixels.shape[0]
        x = self.patch_embeddings(pixels)  # (B, N, W)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + self._positions(pixels.shape[-2] // self.patch, pixels.shape[-1] // self.patch)
        if self.registers:
            x = torch.cat([x[:, :1], self.register_tokens.expand(b, -1, -1), x[:, 1:]], dim=1)
        return x  # (B, 1 + R + N, W)


class _SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            nn.Linear(width, width) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape

        def split(proj: nn.Linear) -> torch.Tensor:  # (B, N, W) -> (B, heads, N, W / heads)
            return proj(x).view(b, n, self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj), split(self.k_proj),
                                             split(self.v_proj))
        return self.o_proj(out.transpose(1, 2).reshape(b, n, w))


class _Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _VitLayer(nn.Module):
    """Pre-norm block with layer scale. ``norm2`` is called as a module: SERA-Adapters read
    its input through a forward pre-hook (``AdaptedDinov2``)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=DINOV2_EPS)
        self.attention = _SelfAttention(width, heads)
        self.layer_scale1 = _LayerScale(width)
        self.norm2 = nn.LayerNorm(width, eps=DINOV2_EPS)
        self.mlp = _Mlp(width)
        self.layer_scale2 = _LayerScale(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class _Encoder(nn.Module):
    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_VitLayer(cfg.hidden_size, cfg.heads)
                                   for _ in range(cfg.layers))


class PlainDinov2(nn.Module):
    """transformers' Dinov2Model (arch ``dinov2``) or Dinov2WithRegistersModel (``dinov2-reg``)
    at ``image_size``, as ``AdaptedDinov2`` runs it: ``embeddings``, ``encoder.layer``,
    ``layernorm``. Its parameters are zeros until a state dict is loaded."""

    def __init__(self, cfg: VisionConfig, image_size: int) -> None:
        super().__init__()
        self.embeddings = _Embeddings(cfg, image_size)
        self.encoder = _Encoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=DINOV2_EPS)


class _QuickGELU(nn.Module):
    """The sigmoid approximation of GELU that OpenAI's CLIP weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _TextBlock(nn.Module):
    def __init__(self, width: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=CLIP_EPS)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width, eps=CLIP_EPS)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", _QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask.to(x.dtype))[0]
        return x + self.mlp(self.ln_2(x))


class _TextBlocks(nn.Module):
    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_TextBlock(cfg.width, cfg.heads, cfg.quick_gelu)
                                       for _ in range(cfg.layers))


class PlainTextTransformer(nn.Module):
    """open_clip's TextTransformer as ``ClipText`` runs it: token and position embeddings, a
    causal mask, ``transformer.resblocks``, ``ln_final`` and ``text_projection``."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.context_length, cfg.width))
        self.transformer = _TextBlocks(cfg)
        self.ln_final = nn.LayerNorm(cfg.width, eps=CLIP_EPS)
        self.text_projection = nn.Parameter(torch.zeros(cfg.width, cfg.output_dim))
        causal = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", causal, persistent=False)
