"""Routing analysis: how each router used its experts, per expression type, for people.

`sera_cli.evaluate.evaluate` already accumulates, for every router, each expert's mean gate
weight and how often it was among the selected (top-k) experts, per expression type; this module
orders that result and draws it, as rich tables and as a heat map PNG, so that a user sees at a
glance whether the spatial expert takes the spatial expressions. `sera eval`,
`sera experts stats` and the demo report all draw from here.

The input is ``result["routing"]``: ``{router: {type or "all": {expert: {"gate": %,
"selected": %}}}}``. Routers are "fusion" and "adapter.<block>".
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

ALL = "all"
FUSION = "fusion"
#: Heat map panels, left to right: (metric for `grid`, title).
PANELS = (("gate", "mean gate weight (%)"), ("selected", "in the top-k (% of samples)"),
          ("lift", "gate minus gate over all (points)"))

ByType = dict[str, dict[str, dict[str, float]]]


def router_order(routing: dict[str, ByType]) -> list[str]:
    """SERA-Fusion first (the sparse router the paper analyses), then adapters by block."""

    def key(name: str) -> tuple[int, int, str]:
        block = name.rpartition(".")[2]
        return (name != FUSION, int(block) if block.isdigit() else 0, name)

    return sorted(routing, key=key)


def type_order(by_type: ByType) -> list[str]:
    """"all" first, then each expression type in alphabetical order."""
    return [ALL, *sorted(t for t in by_type if t != ALL)] if ALL in by_type else sorted(by_type)


def grid(by_type: ByType, metric: str) -> tuple[list[str], list[str], list[list[float]]]:
    """(row labels, expert names, values[row][expert]) for "gate", "selected" or "lift" (the
    gate of a type minus the gate over all expressions, in percentage points)."""
    rows = type_order(by_type)
    experts = list(by_type[rows[0]])
    if metric == "lift":
        base = by_type[ALL]
        values = [[by_type[t][e]["gate"] - base[e]["gate"] for e in experts] for t in rows]
    else:
        values = [[by_type[t][e][metric] for e in experts] for t in rows]
    return rows, experts, values


def routing_table(title: str, by_type: ByType) -> Table:
    """One router as a rich table: "gate % / selected %" per type and expert; the expert with
    the largest gate in each row is bold, so specialization stands out."""
    from rich.table import Table

    rows, experts, gates = grid(by_type, "gate")
    table = Table(title=f"{title} (mean gate % / selected %)")
    table.add_column("expressions")
    for expert in experts:
        table.add_column(expert, justify="right")
    for label, row in zip(rows, gates, strict=True):
        top = max(range(len(row)), key=row.__getitem__)
        cells = [f"{by_type[label][e]['gate']:.1f} / {by_type[label][e]['selected']:.0f}"
                 for e in experts]
        cells[top] = f"[bold]{cells[top]}[/bold]"
        table.add_row(label, *cells)
    return table


def routing_tables(result: dict[str, Any], prefix: str) -> list[Table]:
    """A table per router of one evaluate() result, titled "<prefix>: router <name>"."""
    routing = result["routing"]
    return [routing_table(f"{prefix}: router {name}", routing[name])
            for name in router_order(routing)]


def draw_heatmap(result: dict[str, Any], path: Path, title: str | None = None,
                 routers: list[str] | None = None) -> Path:
    """Write a PNG heat map of one evaluate() result: a row of three panels per router (mean
    gate, top-k rate, gate relative to all expressions); returns ``path``.

    Drawn on matplotlib's Agg canvas without pyplot, so no display and no global backend
    state are needed; written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from sera_cli.checkpoint import atomic_write
    from sera_cli.errors import SeraError

    routing = result["routing"]
    names = routers if routers is not None else router_order(routing)
    missing = [n for n in names if n not in routing]
    if missing or not names:
        have = ", ".join(routing) or "none (the model has no experts)"
        raise SeraError(f"no routing statistics for router(s) {', '.join(missing) or '(none)'}; "
                        f"this result has: {have}")
    experts = max(len(routing[n][ALL]) for n in names)  # columns of the widest panel
    rows = [len(routing[n]) for n in names]  # expression types, plus "all", per router
    size = (len(PANELS) * (2.2 + 0.6 * experts), 0.6 + sum(1.0 + 0.4 * r for r in rows))
    # The layout engine is set before the colorbars are added, so that they sit beside their
    # panels instead of being placed once and left behind.
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), len(PANELS), squeeze=False,
                        gridspec_kw={"height_ratios": rows})
    for row, name in enumerate(names):
        for col, (metric, panel) in enumerate(PANELS):
            _panel(axes[row][col], routing[name], metric, f"{name}: {panel}")
    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(Path(path), buffer.getvalue())
    return Path(path)


def _panel(ax: Any, by_type: ByType, metric: str, title: str) -> None:
    """One annotated heat map: rows are expression types, columns experts."""
    rows, experts, values = grid(by_type, metric)
    if metric == "lift":  # diverging: blue = used less than on average, red = more
        span = max(1.0, max(abs(v) for row in values for v in row))
        image = ax.imshow(values, cmap="RdBu_r", vmin=-span, vmax=span, aspect="auto")
        text = "{:+.1f}"
    else:
        image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=100.0, aspect="auto")
        text = "{:.0f}"
    ax.set_xticks(range(len(experts)), experts, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title, fontsize=9)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            shown = round(value, 1) + 0.0  # no "-0.0" for a difference that rounds to zero
            ax.text(j, i, text.format(shown), ha="center", va="center", fontsize=8,
                    color="black" if metric == "lift" or value > 60 else "white")
    ax.figure.colorbar(image, ax=ax, fraction=0.1, pad=0.03)
