"""The one place where expert and router names become constructors.

Plugins are found through the ``sera`` entry-point group and loaded one at a time, so that one
broken plugin is reported instead of taking the others down (pluggy's bulk loader raises for all).
Modules named in ``SERA_PLUGINS`` (or ``sera -p MODULE``) load without being installed, for plugin
authors; ``SERA_LOAD_PLUGINS`` limits autoloading (empty: none), so tests never depend on what
happens to be installed.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import pluggy

from sera_cli import hookspecs
from sera_cli.config.model import PluginUse
from sera_cli.errors import SeraError
from sera_cli.hookspecs import STAGES, ExpertSpec, RouterSpec

ENTRY_POINT_GROUP = "sera"
ENV_PLUGINS = "SERA_PLUGINS"
ENV_LOAD = "SERA_LOAD_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from; ``error`` is set when it failed to load or to register."""

    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None

    @property
    def source(self) -> str:
        if self.distribution:
            return f"{self.distribution} {self.version}"
        return f"{self.name} (not installed)"


def _closest(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{match[0]}'?" if match else ""


class Registry:
    """Experts by (stage, name) and routers by name, with the plugin that provided each."""

    def __init__(self) -> None:
        self.experts: dict[tuple[str, str], ExpertSpec] = {}
        self.routers: dict[str, RouterSpec] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.conflicts: dict[str, str] = {}

    # -- building -------------------------------------------------------------------------------
    def _claim(self, kind: str, key: str, existing: Any, new: Any) -> bool:
        if existing is None:
            return True
        if existing.plugin != new.plugin:
            self.conflicts[f"{kind} '{key}'"] = (
                f"{kind} '{key}' is registered by two plugins: {existing.plugin} "
                f"({self.plugins[existing.plugin].source}) and {new.plugin} "
                f"({self.plugins[new.plugin].source}); uninstall one of them"
            )
        return False

    def add_expert(self, spec: ExpertSpec) -> None:
        if spec.stage not in STAGES:
            raise SeraError(
                f"plugin {spec.plugin} registers expert '{spec.name}' with stage '{spec.stage}'; "
                f"stages are {', '.join(STAGES)}"
            )
        key = (spec.stage, spec.name)
        if self._claim(f"{spec.stage} expert", spec.name, self.experts.get(key), spec):
            self.experts[key] = spec

    def add_router(self, spec: RouterSpec) -> None:
        if self._claim("router", spec.name, self.routers.get(spec.name), spec):
            self.routers[spec.name] = spec

    # -- lookup ---------------------------------------------------------------------------------
    def _broken_hint(self) -> str:
        broken = [p.name for p in self.plugins.values() if p.error]
        return f" (plugins that failed to load: {', '.join(broken)})" if broken else ""

    def expert(self, stage: str, name: str) -> ExpertSpec:
        conflict = self.conflicts.get(f"{stage} expert '{name}'")
        if conflict:
            raise SeraError(conflict)
        spec = self.experts.get((stage, name))
        if spec is None:
            known = sorted(n for s, n in self.experts if s == stage)
            raise SeraError(
                f"unknown {stage} expert '{name}'; known {stage} experts: "
                f"{', '.join(known) or 'none'}{_closest(name, known)}{self._broken_hint()}"
            )
        return spec

    def router(self, name: str) -> RouterSpec:
        conflict = self.conflicts.get(f"router '{name}'")
        if conflict:
            raise SeraError(conflict)
        spec = self.routers.get(name)
        if spec is None:
            known = sorted(self.routers)
            raise SeraError(
                f"unknown router '{name}'; known routers: {', '.join(known) or 'none'}"
                f"{_closest(name, known)}{self._broken_hint()}"
            )
        return spec

    def spec(self, use: PluginUse) -> ExpertSpec | RouterSpec:
        """The spec a config's PluginUse names (an unknown name raises, listing the known)."""
        return self.expert(use.stage, use.name) if use.kind == "expert" else self.router(use.name)

    def has(self, use: PluginUse) -> bool:
        if use.kind == "expert":
            return (use.stage, use.name) in self.experts
        return use.name in self.routers

    def provenance(self, spec: ExpertSpec | RouterSpec) -> dict[str, str | None]:
        info = self.plugins[spec.plugin]
        return {"plugin": info.name, "distribution": info.distribution, "version": info.version}


def _register_plugin(pm: pluggy.PluginManager, registry: Registry, plugin: object,
                     info: PluginInfo) -> None:
    """Register one plugin object and collect its specs; a failure marks only this plugin."""

    def broken(exc: Exception) -> None:
        registry.plugins[info.name] = replace(info, error=f"{type(exc).__name__}: {exc}")

    if pm.is_registered(plugin):  # editable installs can list one entry point twice
        return
    try:
        pm.register(plugin, name=info.name)
        pm.check_pending()  # a misspelled hook name fails loudly instead of being ignored
    except Exception as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        broken(exc)
        return
    registry.plugins[info.name] = info
    try:
        for impl in pm.hook.sera_register_experts.get_hookimpls():
            if impl.plugin_name == info.name:
                impl.function(register=lambda s: registry.add_expert(replace(s, plugin=info.name)))
        for impl in pm.hook.sera_register_routers.get_hookimpls():
            if impl.plugin_name == info.name:
                impl.function(register=lambda s: registry.add_router(replace(s, plugin=info.name)))
    except Exception as exc:  # a plugin's own bug: name it, keep the rest working
        broken(exc)


def _selected_entry_points() -> list[md.EntryPoint]:
    wanted = os.environ.get(ENV_LOAD)
    seen: set[tuple[str, str]] = set()
    chosen = []
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else ""
        if (dist, ep.value) in seen:
            continue
        seen.add((dist, ep.value))
        if wanted is not None and not {ep.name, dist} & set(wanted.split(",")):
            continue
        chosen.append(ep)
    return chosen


def create_registry(plugins: Iterable[object] = (), modules: Iterable[str] = (),
                    entry_points: bool = True) -> Registry:
    """Build a registry from installed entry points, importable module names and plugin objects.

    Plugin objects (any object or module with ``@hookimpl`` functions) are how tests and notebooks
    add an expert without installing a package.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    if entry_points:
        for ep in _selected_entry_points():
            dist = ep.dist
            info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None)
            try:
                plugin = ep.load()
            except Exception as exc:
                registry.plugins[ep.name] = replace(info, error=f"{type(exc).__name__}: {exc}")
                continue
            _register_plugin(pm, registry, plugin, info)
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            registry.plugins[module_name] = PluginInfo(
                module_name, error=f"{type(exc).__name__}: {exc}"
            )
            continue
        _register_plugin(pm, registry, module, PluginInfo(module_name))
    for obj in plugins:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        _register_plugin(pm, registry, obj, PluginInfo(name))
    return registry


def env_modules() -> list[str]:
    return [m for m in os.environ.get(ENV_PLUGINS, "").split(",") if m.strip()]


@cache
def default_registry() -> Registry:
    """The registry every command uses: installed plugins plus ``SERA_PLUGINS`` modules."""
    return create_registry(modules=env_modules())
