"""Routing analysis: ordering, the relative ("lift") view, tables and the heat map PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sera_cli.analysis.heatmap import draw_heatmap
from sera_cli.analysis.routing import grid, router_order
from sera_cli.analysis.tables import routing_table
from sera_cli.errors import SeraError


def stat(gate: float, selected: float = 100.0) -> dict[str, float]:
    return {"gate": gate, "selected": selected}


# The shape evaluate() returns; a fusion router whose spatial expert takes spatial expressions.
RESULT: dict[str, Any] = {"routing": {
    "fusion": {
        "spatial": {"spatial": stat(70, 100), "context": stat(30, 50), "boundary": stat(0, 0)},
        "all": {"spatial": stat(40, 80), "context": stat(50, 90), "boundary": stat(10, 30)},
        "appearance": {"spatial": stat(10, 60), "context": stat(70, 100), "boundary": stat(20, 40)},
    },
    "adapter.10": {"all": {"spatial": stat(55), "boundary": stat(45)}},
    "adapter.2": {"all": {"spatial": stat(50), "boundary": stat(50)}},
}}


def test_fusion_first_then_adapters_by_block_and_all_first() -> None:
    assert router_order(RESULT["routing"]) == ["fusion", "adapter.2", "adapter.10"]
    rows, experts, values = grid(RESULT["routing"]["fusion"], "gate")
    assert rows == ["all", "appearance", "spatial"]
    assert experts == ["spatial", "context", "boundary"] and values[0] == [40, 50, 10]


def test_lift_is_the_gate_minus_the_gate_over_all_expressions() -> None:
    _, _, lift = grid(RESULT["routing"]["fusion"], "lift")
    assert lift == [[0, 0, 0], [-30, 20, 10], [30, -20, -10]]


def test_table_bolds_the_expert_with_the_largest_gate_per_row() -> None:
    table = routing_table("val", RESULT["routing"]["fusion"])
    spatial_column, context_column = (list(c.cells) for c in table.columns[1:3])
    assert spatial_column[2] == "[bold]70.0 / 100 / 0.000[/bold]"  # the spatial row
    assert context_column[1] == "[bold]70.0 / 100 / 0.000[/bold]"  # the appearance row
    assert spatial_column[0] == "40.0 / 80 / 0.000"


def test_heatmap_is_a_png_with_a_row_of_panels_per_router(tmp_path: Path) -> None:
    one = draw_heatmap(RESULT, tmp_path / "fusion.png", routers=["fusion"])
    every = draw_heatmap(RESULT, tmp_path / "sub" / "all.png", title="val")
    with Image.open(one) as a, Image.open(every) as b:
        assert a.format == b.format == "PNG"
        assert b.height > a.height  # three routers stack three rows of panels


def test_heatmap_of_a_missing_router_names_those_present(tmp_path: Path) -> None:
    with pytest.raises(SeraError, match="router.s. fuzion; this result has: fusion"):
        draw_heatmap(RESULT, tmp_path / "x.png", routers=["fuzion"])
