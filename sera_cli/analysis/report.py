"""The demo's report: metrics per split and expression type, routing use, example overlays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sera_cli.runs.atomic import atomic_write

METRICS = ["miou", "oiou", "prec@0.5", "prec@0.7", "prec@0.9"]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def metrics_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [_row(["split", "type", "n", *METRICS]), _row(["---"] * (3 + len(METRICS)))]
    for r in results:
        lines.append(_row([r["split"], "all", str(r["n"]), *[_fmt(r[m]) for m in METRICS]]))
        for expr_type, sub in r.get("by_type", {}).items():
            lines.append(_row(["", expr_type, str(sub["n"]), *[_fmt(sub[m]) for m in METRICS]]))
    return lines


def routing_markdown(result: dict[str, Any], router: str = "fusion") -> list[str]:
    """Mean gate weight (percent) of each expert per expression type, for one split."""
    by_type = result["routing"].get(router)
    if not by_type:
        return [f"(no '{router}' router in this model)"]
    experts = list(by_type["all"])
    lines = [_row(["expressions", *experts]), _row(["---"] * (1 + len(experts)))]
    for expr_type, stats in by_type.items():
        lines.append(_row([expr_type, *[f"{stats[e]['gate']:.1f}" for e in experts]]))
    return lines


def write_report(folder: Path, title: str, results: list[dict[str, Any]],
                 examples: list[dict[str, Any]], extra: list[str] | None = None) -> Path:
    """Write ``report.md`` and ``report.json`` into ``folder``; returns the Markdown path."""
    lines = [f"# {title}", "", "## Metrics (percent)", "", *metrics_table(results), ""]
    for r in results:
        lines += [f"## Routing on {r['split']}: mean fusion gate weight (percent)", "",
                  *routing_markdown(r), ""]
    lines += extra or []
    lines += ["## Examples", ""]
    for ex in examples:
        lines += [f"**\"{ex['expression']}\"** ({ex['type']}, IoU {ex['iou'] * 100:.1f})", "",
                  f"![{ex['expression']}]({ex['overlay']})", ""]
    atomic_write(folder / "report.md", "\n".join(lines))
    atomic_write(folder / "report.json", json.dumps({"results": results, "examples": examples},
                                                    indent=2))
    return folder / "report.md"
