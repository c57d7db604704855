"""`sera experts list`, `sera routers list`, `sera --help`, `-p`: through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def sera(*args: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "SERA_LOAD_PLUGINS": "builtin", **(env or {})}
    return subprocess.run([sys.executable, "-m", "sera_cli", *args], capture_output=True,
                          text=True, env=environ, cwd=cwd, timeout=120)


def test_experts_list_json_names_builtin_experts_and_routers() -> None:
    result = sera("experts", "list", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted((e["name"], e["stage"]) for e in data["experts"]) == [
        ("boundary", "adapter"), ("boundary", "fusion"), ("context", "fusion"),
        ("shape", "fusion"), ("spatial", "adapter"), ("spatial", "fusion")]
    assert sorted(r["name"] for r in data["routers"]) == ["soft", "topk", "topk-token"]
    context = next(e for e in data["experts"] if e["name"] == "context")
    assert context["distribution"] == "sera" and context["params"] > 0
    assert data["broken"] == [] and data["conflicts"] == []


def test_experts_list_table_and_routers() -> None:
    table = sera("experts", "list")
    assert table.returncode == 0 and "context" in table.stdout and "sera 0.1.0" in table.stdout
    routers = sera("routers", "list", "--json")
    assert {r["name"]: r["sparse"] for r in json.loads(routers.stdout)["routers"]} == {
        "soft": False, "topk": True, "topk-token": True}


def test_plugin_option_loads_an_uninstalled_module(tmp_path: Path) -> None:
    (tmp_path / "my_expert.py").write_text(
        "from sera_cli.hookspecs import ExpertSpec, hookimpl\n"
        "@hookimpl\n"
        "def sera_register_experts(register):\n"
        "    register(ExpertSpec('dilated', 'fusion', 'torch.nn:Identity', 'dilated convs'))\n")
    result = sera("-p", "my_expert", "experts", "list", "--json",
                  env={"PYTHONPATH": str(tmp_path)})
    names = [(e["name"], e["plugin"]) for e in json.loads(result.stdout)["experts"]]
    assert ("dilated", "my_expert") in names and ("context", "builtin") in names


def test_broken_plugin_is_listed_and_the_rest_still_work() -> None:
    result = sera("-p", "sera_not_a_module", "experts", "list", "--json")
    data = json.loads(result.stdout)
    assert data["broken"][0]["plugin"] == "sera_not_a_module"
    assert "ModuleNotFoundError" in data["broken"][0]["error"]
    assert len(data["experts"]) == 6
    shown = sera("-p", "sera_not_a_module", "experts", "list")
    assert "broken plugin" in shown.stdout and "sera_not_a_module" in shown.stdout


def test_help_and_version_do_not_import_torch() -> None:
    """`sera --help` stays fast: no torch, and not Typer's rich help (markdown-it, pygments)."""
    code = ("import sys\n"
            "from sera_cli.cli.main import run\n"
            "try:\n    run(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = {'torch', 'transformers', 'typer.rich_utils', 'pygments'} & set(sys.modules)\n"
            "assert not heavy, f'imported {sorted(heavy)}'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "experts" in result.stdout
    version = sera("--version")
    assert version.stdout.strip() == "sera 0.1.0"


def test_unknown_command_option_error_is_one_line() -> None:
    result = sera("experts", "list", "--bogus")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
