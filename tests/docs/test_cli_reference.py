"""docs/cli.md documents every command, argument and option of `sera`, and nothing that is gone.

The command tree is walked as the CLI builds it, so a new option or command fails this test until
it is documented.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from sera_cli.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
    """(full command name, command) for the command and every visible subcommand below it."""
    yield " ".join(path), command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from walk(sub, [*path, name])


def documented_commands() -> list[tuple[str, Any]]:
    """Commands a user runs or passes options to: leaves, and groups that take options."""
    root = typer.main.get_command(app)
    return [(name, cmd) for name, cmd in walk(root, ["sera"])
            if cmd.params or not getattr(cmd, "commands", None)]


def sections() -> dict[str, str]:
    """The text under each "## `sera ...`" heading of the reference, by command."""
    parts = re.split(r"^#+ `(sera[^`]*)`[ \t]*$", DOC.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def names(command: Any) -> set[str]:
    """What the user types: every option spelling, and arguments in upper case (IMAGE)."""
    out: set[str] = set()
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            out.add(param.name.upper())
        else:
            out.update(param.opts + param.secondary_opts)
    return out


def test_every_command_has_a_section() -> None:
    missing = [name for name, _ in documented_commands() if name not in sections()]
    assert not missing, f"docs/cli.md has no '## `<command>`' section for {missing}"


@pytest.mark.parametrize("name,command", documented_commands(),
                         ids=[name for name, _ in documented_commands()])
def test_section_lists_exactly_the_commands_options(name: str, command: Any) -> None:
    text = sections().get(name, "")
    undocumented = sorted(n for n in names(command)
                          if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text))
    assert not undocumented, f"docs/cli.md, `{name}`: undocumented {undocumented}"
    stale = sorted(set(OPTION.findall(text)) - names(command) - {"--help"})
    assert not stale, f"docs/cli.md, `{name}`: documents options that do not exist: {stale}"
