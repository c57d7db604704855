"""What `sera experts list` and `sera routers list` show: one row per registered expert or
router, with its plugin and its trainable parameters at a reference width (from the cache where
the count is known, so a listing need not import torch)."""

from __future__ import annotations

from typing import Any

from sera_cli.analysis.param_counts import REFERENCE_WIDTH, ROUTER_REFERENCE, ParamCountCache


def problems_of(registry: Any) -> dict[str, list[Any]]:
    """Plugins that failed to load, and names that two plugins claim."""
    return {
        "broken": [{"plugin": p.name, "source": p.source, "error": p.error}
                   for p in registry.plugins.values() if p.error],
        "conflicts": sorted(registry.conflicts.values()),
    }


def expert_rows(registry: Any) -> list[dict[str, Any]]:
    counts = ParamCountCache()
    rows = []
    for (stage, name), spec in sorted(registry.experts.items()):
        info = registry.plugins[spec.plugin]
        width = REFERENCE_WIDTH[stage]
        rows.append({
            "name": name, "stage": stage, "plugin": info.name,
            "distribution": info.distribution, "version": info.version,
            "params": counts.count(spec.factory, (width,),
                                   lambda spec=spec, width=width: spec.build(width)),
            "reference_width": width, "description": spec.description,
        })
    counts.save()
    return rows


def router_rows(registry: Any) -> list[dict[str, Any]]:
    counts = ParamCountCache()
    rows = []
    for name, spec in sorted(registry.routers.items()):
        info = registry.plugins[spec.plugin]
        rows.append({
            "name": name, "sparse": spec.sparse, "plugin": info.name,
            "distribution": info.distribution, "version": info.version,
            "params": counts.count(spec.factory, ROUTER_REFERENCE,
                                   lambda spec=spec: spec.build(*ROUTER_REFERENCE)),
            "description": spec.description,
        })
    counts.save()
    return rows
