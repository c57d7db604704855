"""Results as rich tables for the terminal: metrics per split and type, routing per router."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sera_cli.analysis.metrics import PROTOCOLS
from sera_cli.analysis.routing import ByType, grid, router_order

if TYPE_CHECKING:
    from rich.table import Table


def routing_table(title: str, by_type: ByType, entropy: dict[str, float] | None = None
                  ) -> Table:
    """One router as a rich table: "gate % / selected % / contribution" per type and expert,
    and the routing entropy (bits) per type; the expert with the largest gate in each row is
    bold, so specialization stands out, and a contribution near zero shows an idle expert."""
    from rich.table import Table

    rows, experts, gates = grid(by_type, "gate")
    table = Table(title=f"{title} (mean gate % / selected % / contribution |g(f(x) - x)|/|x|)")
    table.add_column("expressions")
    for expert in experts:
        table.add_column(expert, justify="right")
    if entropy is not None:
        table.add_column("entropy (bits)", justify="right")
    for label, row in zip(rows, gates, strict=True):
        top = max(range(len(row)), key=row.__getitem__)
        cells = [f"{by_type[label][e]['gate']:.1f} / {by_type[label][e]['selected']:.0f} / "
                 f"{by_type[label][e].get('contribution', 0.0):.3f}" for e in experts]
        cells[top] = f"[bold]{cells[top]}[/bold]"
        if entropy is not None:
            cells.append(f"{entropy.get(label, 0.0):.2f}")
        table.add_row(label, *cells)
    return table


def routing_tables(result: dict[str, Any], prefix: str) -> list[Table]:
    """A table per router of one evaluate() result, titled "<prefix>: router <name>"."""
    routing, entropy = result["routing"], result.get("routing_entropy", {})
    return [routing_table(f"{prefix}: router {name}", routing[name], entropy.get(name))
            for name in router_order(routing)]


def results_table(results: list[dict[str, Any]], title: str) -> Table:
    """One row per (data set, split), indented rows per expression type, the figures of the
    results' protocol in percent, each column headed by its figure and that protocol: one
    protocol's mIoU is not another's."""
    from rich.table import Table

    protocols = list(dict.fromkeys(r["protocol"] for r in results))
    figures = list(dict.fromkeys(f for p in protocols for f in PROTOCOLS[p].figures()))
    table = Table(title=title)
    for column in ["data set", "split", "n"]:
        table.add_column(column, justify="right" if column == "n" else "left")
    for figure in figures:
        table.add_column(f"{figure}\n{'/'.join(protocols)}", justify="right")
    for r in results:
        table.add_row(r["dataset"], r["split"], str(r["n"]), *[_pct(r.get(m)) for m in figures])
        for expr_type, sub in r.get("by_type", {}).items():
            table.add_row("", f"  {expr_type}", str(sub["n"]),
                          *[_pct(sub.get(m)) for m in figures])
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
