"""DINOv2 run block by block, with SERA-Adapters in the chosen blocks' feed-forward paths."""

from __future__ import annotations

import functools

import torch
from torch import nn

from sera_cli.model.adapter import SeraAdapter
from sera_cli.model.backbones import num_prefix_tokens, patch_size


class AdaptedDinov2(nn.Module):
    """Returns the patch-token grids after the neck's blocks and after the final norm,
    each (B, W, H, W')."""

    def __init__(self, dinov2: nn.Module, adapters: dict[int, SeraAdapter], scale: float,
                 neck_blocks: list[int]) -> None:
        super().__init__()
        self.dinov2 = dinov2
        self.adapters = nn.ModuleDict({str(k): v for k, v in adapters.items()})
        self.scale = scale
        self.neck_blocks = list(neck_blocks)
        self.prefix = num_prefix_tokens(dinov2)
        self.patch = patch_size(dinov2)
        self._mid: dict[int, torch.Tensor] = {}
        for index in adapters:
            layer = dinov2.encoder.layer[index - 1]
            # a partial of a bound method, not a closure: copy.deepcopy rebinds it to the copy
            # (an EMA or SWA copy of the model), where a closure would feed the original
            layer.norm2.register_forward_pre_hook(functools.partial(self._keep_mid, index))

    def _keep_mid(self, index: int, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._mid[index] = args[0]  # the post-attention state x that feeds LN -> MLP

    def _grid(self, tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        patches = tokens[:, self.prefix:]  # drop CLS and register tokens
        # (B, N, W) -> (B, W, H, W')
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, *hw)

    def forward(self, pixels: torch.Tensor, words: torch.Tensor, pad_mask: torch.Tensor,
                sentence: torch.Tensor | None = None) -> list[torch.Tensor]:
        hw = (pixels.shape[-2] // self.patch, pixels.shape[-1] // self.patch)
        x = self.dinov2.embeddings(pixels)  # (B, P + N, W)
        maps = []
        for index, layer in enumerate(self.dinov2.encoder.layer, start=1):
            out = layer(x)
            x = out[0] if isinstance(out, tuple) else out
            adapter = self.adapters[str(index)] if str(index) in self.adapters else None
            if adapter is not None:
                mid = self._mid.pop(index)
                update = adapter(mid[:, self.prefix:], hw, words, pad_mask, sentence)
                x = torch.cat([x[:, : self.prefix], x[:, self.prefix:] + self.scale * update], 1)
            if index in self.neck_blocks:
                maps.append(self._grid(x, hw))
        maps.append(self._grid(self.dinov2.layernorm(x), hw))
        return maps
