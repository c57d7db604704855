"""``sera``: the top-level Typer app. Imports nothing heavy: each command imports what it needs."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sera_cli import __version__
from sera_cli.cli import data, experts
from sera_cli.cli.demo import demo
from sera_cli.cli.evaluate import evaluate
from sera_cli.cli.predict import predict
from sera_cli.cli.serve import serve
from sera_cli.cli.stats import stats
from sera_cli.cli.train import train
from sera_cli.errors import SeraError

ENV_DEBUG = "SERA_DEBUG"


class SeraGroup(TyperGroup):
    """Turns a SeraError raised anywhere below into one line on stderr and exit code 1;
    ``--debug`` (or SERA_DEBUG=1) keeps the traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SeraError as exc:
            if os.environ.get(ENV_DEBUG):
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=SeraGroup,
    name="sera",
    help="Referring image segmentation with spatio-semantic expert routing (SERA, CVPR 2025).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Click's plain help: Typer's rich help imports rich.markdown and rich.traceback (pygments,
    # markdown-it), which doubled the wall time of `sera --help` to 0.5 s. Progress bars and
    # tables still use rich.
    rich_markup_mode=None,
)
app.add_typer(experts.app, name="experts")
experts.app.command("stats")(stats)
app.add_typer(experts.routers_app, name="routers")
app.add_typer(data.app, name="data")
app.command()(train)
app.command("eval")(evaluate)
app.command()(predict)
app.command()(demo)
app.command()(serve)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sera {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    plugin: Annotated[list[str] | None, typer.Option(
        "--plugin", "-p", metavar="MODULE",
        help="Load a plugin module without installing it (repeatable), as pytest -p does.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")
                     ] = False,
) -> None:
    """Train, evaluate and apply SERA; experts and routers come from plugins."""
    if debug:
        os.environ[ENV_DEBUG] = "1"
    if plugin:
        from sera_cli.registry import ENV_PLUGINS, default_registry, env_modules

        os.environ[ENV_PLUGINS] = ",".join(env_modules() + list(plugin))
        default_registry.cache_clear()


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="sera")
