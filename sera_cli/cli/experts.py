"""``sera experts list`` and ``sera routers list``: what the installed plugins provide."""

from __future__ import annotations

import json
from typing import Any

import typer

from sera_cli.cli import options

app = typer.Typer(help="Experts registered by plugins.", no_args_is_help=True)
routers_app = typer.Typer(help="Routers registered by plugins.", no_args_is_help=True)




def _print_table(title: str, columns: list[str], rows: list[list[str]],
                 problems: dict[str, list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for broken in problems["broken"]:
        console.print(f"[red]broken plugin[/red] {broken['source']}: {broken['error']}")
    for conflict in problems["conflicts"]:
        console.print(f"[red]conflict[/red] {conflict}")


@app.command("list")
def list_experts(as_json: options.Json = False) -> None:
    """List every registered expert: name, stage, plugin, parameters, description."""
    from sera_cli.analysis.listing import expert_rows, problems_of
    from sera_cli.registry import default_registry

    registry = default_registry()
    rows = expert_rows(registry)
    problems = problems_of(registry)
    if as_json:
        routers = [{"name": s.name, "plugin": s.plugin, "sparse": s.sparse}
                   for s in registry.routers.values()]
        typer.echo(json.dumps({"experts": rows, "routers": routers, **problems}, indent=2))
        return
    _print_table(
        "sera experts", ["name", "stage", "plugin", "params (width)", "description"],
        [[r["name"], r["stage"], registry.plugins[r["plugin"]].source,
          f"{r['params']:,} ({r['reference_width']})" if isinstance(r["params"], int)
          else str(r["params"]), r["description"]] for r in rows],
        problems)


@routers_app.command("list")
def list_routers(as_json: options.Json = False) -> None:
    """List every registered router: name, kind, plugin, parameters, description."""
    from sera_cli.analysis.listing import problems_of, router_rows
    from sera_cli.registry import default_registry

    registry = default_registry()
    rows = router_rows(registry)
    problems = problems_of(registry)
    if as_json:
        typer.echo(json.dumps({"routers": rows, **problems}, indent=2))
        return
    _print_table(
        "sera routers", ["name", "kind", "plugin", "params", "description"],
        [[r["name"], "sparse top-k" if r["sparse"] else "dense",
          registry.plugins[r["plugin"]].source,
          f"{r['params']:,}" if isinstance(r["params"], int) else str(r["params"]),
          r["description"]] for r in rows],
        problems)
