"""The dilated expert keeps the expert contract; registered on a fresh registry, not installed."""

import sera_dilated
import torch
from sera_dilated.expert import DilatedExpert

from sera_cli.registry import create_registry


def test_registered_by_name_and_shape_preserving() -> None:
    registry = create_registry(plugins=[sera_dilated], entry_points=False)
    expert = registry.expert("fusion", "dilated").build(16)
    x = torch.randn(2, 16, 7, 9)  # odd sizes: the padding must keep H and W
    assert expert(x).shape == x.shape


def test_untrained_expert_returns_its_input() -> None:
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(DilatedExpert(8)(x), x)
