"""The routing heat map: a PNG with, per router, mean gate, top-k rate and the gate relative to
all expressions, for each expression type and expert."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sera_cli.analysis.routing import ALL, ByType, grid, router_order

#: Heat map panels, left to right: (metric for `grid`, title).
PANELS = (("gate", "mean gate weight (%)"), ("selected", "in the top-k (% of samples)"),
          ("lift", "gate minus gate over all (points)"))


def draw_heatmap(result: dict[str, Any], path: Path, title: str | None = None,
                 routers: list[str] | None = None) -> Path:
    """Write a PNG heat map of one evaluate() result: a row of three panels per router (mean
    gate, top-k rate, gate relative to all expressions); returns ``path``.

    Drawn on matplotlib's Agg canvas without pyplot, so no display and no global backend
    state are needed; written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from sera_cli.errors import SeraError
    from sera_cli.runs.atomic import atomic_write

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
