"""The assembled model: shapes, zero-initialized adapters, PEFT modes, routing by name."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_inputs
from torch import nn

from sera_cli.config import ModelConfig, preset
from sera_cli.errors import SeraError
from sera_cli.hookspecs import ExpertSpec, hookimpl
from sera_cli.model.peft import apply_tuning, parameter_counts
from sera_cli.model.projector import Projector, sample_conv3x3
from sera_cli.model.sera import build_model
from sera_cli.registry import Registry, create_registry


def test_forward_shapes_and_routings(tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    model = build_model(tiny_cfg, builtin_registry)
    pixels, ids = tiny_inputs(tiny_cfg, batch=3)
    out = model(pixels, ids)
    side = tiny_cfg.grid_size * 4
    assert out.logits.shape == (3, 1, side, side)
    assert set(out.routings) == {"adapter.2", "adapter.4", "fusion"}
    assert out.routings["fusion"].gates.shape == (3, 4)
    assert out.routings["adapter.2"].gates.shape == (3, 2)


def test_untrained_adapters_leave_dinov2_unchanged(tiny_cfg: ModelConfig,
                                                   builtin_registry: Registry) -> None:
    model = build_model(tiny_cfg, builtin_registry).eval()
    pixels, ids = tiny_inputs(tiny_cfg)
    words, _, pad = model.text(ids, model.text_adapters)
    with torch.no_grad():
        maps = model.vision(pixels, words, pad)
        plain = model.vision.dinov2(pixels, output_hidden_states=True)
    prefix = model.vision.prefix
    expected = [plain.hidden_states[b][:, prefix:] for b in tiny_cfg.neck_blocks]
    expected.append(plain.last_hidden_state[:, prefix:])
    for got, want in zip(maps, expected, strict=True):
        torch.testing.assert_close(got.flatten(2).transpose(1, 2), want)
    # ... and a trained (non-zero) adapter does change them.
    for adapter in model.vision.adapters.values():
        nn.init.normal_(adapter.up.weight)
    with torch.no_grad():
        changed = model.vision(pixels, words, pad)[-1]
    assert not torch.allclose(changed.flatten(2).transpose(1, 2), expected[-1])


def test_bias_ln_trains_only_biases_and_layernorms(tiny_cfg: ModelConfig,
                                                   builtin_registry: Registry) -> None:
    model = build_model(dataclasses.replace(tiny_cfg, tune="bias-ln"), builtin_registry)
    for prefix in ("vision.dinov2.", "text.tower."):
        for name, p in model.named_parameters():
            if name.startswith(prefix):
                module = model.get_submodule(name.rsplit(".", 1)[0])
                expected = name.endswith("bias") or isinstance(module, nn.LayerNorm)
                assert p.requires_grad == expected, name
    new = [p for n, p in model.named_parameters()
           if not n.startswith(("vision.dinov2.", "text.tower."))]
    assert new and all(p.requires_grad for p in new)
    apply_tuning(model, "frozen")
    assert parameter_counts(model)["backbone_trainable"] == 0
    apply_tuning(model, "full")
    counts = parameter_counts(model)
    assert counts["backbone_trainable"] == counts["backbone"]


def test_sera_b_bias_ln_share_under_one_percent(builtin_registry: Registry) -> None:
    cfg = preset("sera-b")
    cfg.vision.hub_id, cfg.text.pretrained = None, None  # paper sizes, no download
    model = build_model(cfg, builtin_registry)
    counts = parameter_counts(model)
    print(f"sera-b bias-ln: backbone {counts['backbone']:,}, trainable in backbone "
          f"{counts['backbone_trainable']:,} ({counts['backbone_trainable_pct']:.3f}%), "
          f"new modules {counts['new']:,}")
    assert counts["backbone"] > 140_000_000  # DINOv2 ViT-B + CLIP text, at the paper's sizes
    assert 0 < counts["backbone_trainable_pct"] < 1.0


def test_topk_out_of_range_is_a_clear_error(tiny_cfg: ModelConfig,
                                            builtin_registry: Registry) -> None:
    for k in (0, 5):
        with pytest.raises(SeraError, match=f"--topk {k} is out of range: choose 1 to 4"):
            build_model(dataclasses.replace(tiny_cfg, topk=k), builtin_registry)


def test_unknown_expert_lists_known_names(tiny_cfg: ModelConfig,
                                          builtin_registry: Registry) -> None:
    cfg = dataclasses.replace(tiny_cfg, experts=["spatial", "contxt"])
    with pytest.raises(SeraError, match="unknown fusion expert 'contxt'.*boundary, context, "
                                        "shape, spatial.*did you mean 'context'"):
        build_model(cfg, builtin_registry)


def test_no_experts_is_a_plain_model(tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    cfg = dataclasses.replace(tiny_cfg, experts=[], adapter_experts=[])
    model = build_model(cfg, builtin_registry)
    pixels, ids = tiny_inputs(cfg)
    out = model(pixels, ids)
    assert out.routings == {}
    assert out.logits.shape[1] == 1


class _Doubler(nn.Module):
    """A throwaway expert: 2x its input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * self.scale


class _DoublerPlugin:
    @hookimpl
    def sera_register_experts(self, register):  # type: ignore[no-untyped-def]
        register(ExpertSpec("doubler", "fusion", _Doubler, "doubles its input"))


def test_uninstalled_plugin_object_adds_an_expert_the_model_routes_to(tiny_cfg: ModelConfig,
                                                                      ) -> None:
    import sera_builtin

    registry = create_registry(plugins=[sera_builtin, _DoublerPlugin()], entry_points=False)
    cfg = dataclasses.replace(tiny_cfg, experts=["spatial", "doubler"], topk=2)
    model = build_model(cfg, registry)
    doubler = model.fusion.experts[1]
    assert isinstance(doubler, _Doubler)
    out = model(*tiny_inputs(cfg))
    assert doubler.calls == 1
    assert (out.routings["fusion"].gates[:, 1] > 0).all()


@pytest.mark.parametrize("width", [None, 16])
def test_projector_width_sets_its_channels_not_the_mask_shape(tiny_cfg: ModelConfig,
                                                              builtin_registry: Registry,
                                                              width: int | None) -> None:
    cfg = dataclasses.replace(tiny_cfg, projector_dim=width)
    model = build_model(cfg, builtin_registry).eval()
    assert model.projector.channels == (width or cfg.fusion_dim) // 2
    # a 3x3 tap per channel and per coordinate channel, and a bias
    assert model.projector.kernel.out_features == (model.projector.channels + 2) * 9 + 1
    out = model(*tiny_inputs(cfg, batch=2))
    assert out.logits.shape == (2, 1, 4 * cfg.grid_size, 4 * cfg.grid_size)


def test_projector_kernel_reads_the_coordinates() -> None:
    """A sentence kernel that weights only the x channel's centre tap draws a left-to-right
    ramp: position reaches the mask logits directly, whatever the visual features."""
    projector = Projector(dim=8, sentence_dim=4)
    projector.visual = nn.Sequential()  # pass the features through unchanged
    c = projector.channels
    with torch.no_grad():
        projector.kernel.weight.zero_()
        projector.kernel.bias.zero_()
        projector.kernel.bias[c * 9 + 4] = 1.0  # channel c is x; tap 4 is the centre
    logits = projector(torch.zeros(1, c, 6, 10), torch.zeros(1, 4))[0, 0]
    assert torch.allclose(logits, torch.linspace(-1, 1, 10).expand(6, -1), atol=1e-6)


def test_projector_autocasts_to_its_own_dtype_whatever_the_callers() -> None:
    """``autocast_dtype`` (CPU training: the rest of the model in float32) gives bf16 logits
    close to the float32 ones; unset, the projector follows its caller's precision."""
    torch.manual_seed(0)
    projector = Projector(dim=8, sentence_dim=4).eval().requires_grad_(False)
    x, sentence = torch.randn(2, 8, 6, 6), torch.randn(2, 4)
    exact = projector(x, sentence)
    assert exact.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert projector(x, sentence).dtype == torch.bfloat16
    projector.autocast_dtype = torch.bfloat16
    low = projector(x, sentence)
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), exact, atol=0.05 * float(exact.abs().max()))


def test_sample_conv3x3_is_a_conv_with_each_samples_own_kernel() -> None:
    """The batched-matmul form matches F.conv2d run sample by sample, borders included."""
    torch.manual_seed(0)
    x, weight, bias = torch.randn(3, 5, 7, 9), torch.randn(3, 5 * 9), torch.randn(3)
    expected = torch.cat([F.conv2d(x[i:i + 1], weight[i].reshape(1, 5, 3, 3), bias[i:i + 1],
                                   padding=1) for i in range(3)])
    assert torch.allclose(sample_conv3x3(x, weight, bias), expected, atol=1e-5)


def test_a_deep_copy_runs_on_its_own(tiny_cfg: ModelConfig, builtin_registry: Registry) -> None:
    """copy.deepcopy (what EMA and SWA wrappers do) gives a model whose adapters read its own
    blocks: the same outputs, and the original's after its weights change."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg, builtin_registry).eval()
    twin = copy.deepcopy(model)
    pixels = torch.randn(2, 3, 128, 128)
    ids = torch.tensor([[49406, 518, 736, 49407] + [0] * 13] * 2)
    with torch.no_grad():
        before = model(pixels, ids).logits
        assert torch.equal(twin(pixels, ids).logits, before)
        for p in model.vision.adapters.parameters():
            p.add_(0.5)
        assert torch.equal(twin(pixels, ids).logits, before)
        assert not torch.equal(model(pixels, ids).logits, before)
