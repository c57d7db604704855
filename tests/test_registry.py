"""The plugin registry: lookup by name, provenance, and failures that stay contained."""

from __future__ import annotations

import sys
import types

import pytest
import sera_builtin

from sera_cli.errors import SeraError
from sera_cli.hookspecs import ExpertSpec, hookimpl
from sera_cli.registry import create_registry


def _plugin(name: str, stage: str = "fusion", owner: str = "") -> object:
    class Plugin:
        @hookimpl
        def sera_register_experts(self, register):  # type: ignore[no-untyped-def]
            register(ExpertSpec(name, stage, "torch.nn:Identity", "test expert"))

    Plugin.__name__ = f"plugin_{name}{owner}"
    return Plugin()


def test_builtin_names_and_stages() -> None:
    registry = create_registry(plugins=[sera_builtin], entry_points=False)
    assert sorted(registry.experts) == [
        ("adapter", "boundary"), ("adapter", "spatial"), ("fusion", "boundary"),
        ("fusion", "context"), ("fusion", "shape"), ("fusion", "spatial")]
    assert sorted(registry.routers) == ["soft", "topk", "topk-token"]
    assert registry.routers["topk"].sparse and registry.routers["topk-token"].sparse
    assert not registry.routers["soft"].sparse


def test_loading_the_builtin_plugin_does_not_import_torch() -> None:
    code = ("import sys, sera_builtin; from sera_cli.registry import create_registry; "
            "create_registry(plugins=[sera_builtin], entry_points=False); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_router_lists_known_and_suggests() -> None:
    registry = create_registry(plugins=[sera_builtin], entry_points=False)
    with pytest.raises(SeraError, match="unknown router 'topK'; known routers: soft, topk, "
                                        "topk-token; did you mean 'topk'"):
        registry.router("topK")


def test_two_plugins_claiming_one_name_is_an_error_naming_both() -> None:
    plugins = [_plugin("dilated", owner="_a"), _plugin("dilated", owner="_b")]
    registry = create_registry(plugins=plugins, entry_points=False)
    with pytest.raises(SeraError, match="fusion expert 'dilated' is registered by two plugins: "
                                        "plugin_dilated_a.*and plugin_dilated_b"):
        registry.expert("fusion", "dilated")


def test_same_name_at_two_stages_is_not_a_conflict() -> None:
    plugins = [_plugin("x", "fusion", "_a"), _plugin("x", "adapter", "_b")]
    registry = create_registry(plugins=plugins, entry_points=False)
    assert registry.expert("fusion", "x").stage == "fusion"
    assert registry.expert("adapter", "x").stage == "adapter"
    assert not registry.conflicts


def test_plugin_module_that_fails_to_import_is_reported_and_others_work() -> None:
    registry = create_registry(plugins=[sera_builtin], modules=["sera_no_such_plugin_module"],
                               entry_points=False)
    info = registry.plugins["sera_no_such_plugin_module"]
    assert info.error and "ModuleNotFoundError" in info.error
    assert registry.expert("fusion", "context").plugin == "sera_builtin"
    with pytest.raises(SeraError, match="plugins that failed to load: sera_no_such_plugin_module"):
        registry.expert("fusion", "missing")


def test_plugin_whose_hook_raises_is_named_and_others_work() -> None:
    class Exploding:
        @hookimpl
        def sera_register_experts(self, register):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom in my hook")

    registry = create_registry(plugins=[Exploding(), sera_builtin], entry_points=False)
    assert registry.plugins["Exploding"].error == "RuntimeError: boom in my hook"
    assert ("fusion", "shape") in registry.experts


def test_misspelled_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def sera_register_expert(self, register):  # type: ignore[no-untyped-def]
            pass

    registry = create_registry(plugins=[Typo(), sera_builtin], entry_points=False)
    assert "sera_register_expert" in (registry.plugins["Typo"].error or "")
    assert ("fusion", "shape") in registry.experts


def test_module_plugin_loads_without_installing(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("my_dev_expert")

    @hookimpl
    def sera_register_experts(register):  # type: ignore[no-untyped-def]
        register(ExpertSpec("dev", "fusion", "torch.nn:Identity", "in development"))

    module.sera_register_experts = sera_register_experts  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_dev_expert", module)
    registry = create_registry(modules=["my_dev_expert"], entry_points=False)
    spec = registry.expert("fusion", "dev")
    assert registry.plugins[spec.plugin].source == "my_dev_expert (not installed)"


def test_bad_stage_marks_the_plugin_broken() -> None:
    registry = create_registry(plugins=[_plugin("odd", stage="decoder")], entry_points=False)
    assert "stage 'decoder'" in (registry.plugins["plugin_odd"].error or "")
