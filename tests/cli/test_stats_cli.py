"""`sera experts stats`: routing per expression type as tables, JSON and a heat map PNG.

The command is registered on a throwaway app here, so that it is tested the way `sera` runs it
(one-line errors through SeraGroup) whichever group it is wired into.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner, Result

from sera_cli.cli.main import SeraGroup
from sera_cli.cli.stats import stats
from sera_cli.registry import default_registry

EXPERTS = ["spatial", "context", "boundary", "shape"]
Invoke = Callable[..., Result]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run `stats ARGS` in-process with only the built-in plugin loaded."""
    app = typer.Typer(cls=SeraGroup)
    app.callback()(lambda: None)
    app.command("stats")(stats)
    monkeypatch.setenv("SERA_LOAD_PLUGINS", "builtin")
    default_registry.cache_clear()
    yield lambda *args: CliRunner().invoke(app, ["stats", *args])
    default_registry.cache_clear()


def test_prints_a_table_per_router_and_writes_the_heatmap(invoke: Invoke, trained_run: Path,
                                                          tmp_path: Path) -> None:
    png = tmp_path / "routing.png"
    result = invoke("--checkpoint", str(trained_run), "--split", "val", "--out", str(png))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("router fusion") < out.index("router adapter.2") < out.index(
        "router adapter.4")  # the fusion router first, adapters by block
    assert all(name in out for name in EXPERTS) and "all" in out
    assert f"heat map: {png}" in out.replace("\n", "")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 400


def test_json_uses_the_latest_run_and_names_the_heatmap_after_the_split(
        invoke: Invoke, trained_run: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERA_RUNS", str(trained_run.parent))
    monkeypatch.chdir(tmp_path)
    result = invoke("--split", "testA", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Path(data["checkpoint"]).resolve() == trained_run.resolve()
    assert (data["dataset"], data["split"]) == ("synth", "testA") and data["n"] > 0
    assert (tmp_path / "routing-synth-testA.png").is_file()
    fusion = data["routing"]["fusion"]
    assert "all" in fusion and len(fusion) > 1  # per expression type, beside all
    for by_expert in fusion.values():
        assert list(by_expert) == EXPERTS
        # gates sum to 1 per sample; in bf16 (--precision auto on a CPU with AVX512-BF16) to
        # within bf16's resolution, 2^-8
        assert sum(s["gate"] for s in by_expert.values()) == pytest.approx(100.0, abs=0.4)
        assert all(s["contribution"] >= 0 for s in by_expert.values())
        assert all(s["selected"] == 100.0 for s in by_expert.values())  # top-4 of 4


def test_errors_are_one_line(invoke: Invoke, trained_run: Path) -> None:
    result = invoke("--checkpoint", str(trained_run), "--split", "tset")
    assert result.exit_code == 1
    assert "unknown split 'tset'" in result.output and "Traceback" not in result.output
