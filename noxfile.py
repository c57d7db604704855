"""Developer sessions: `nox -l` lists them; `nox` runs tests and lint."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

# torch comes as the CPU-capable wheel pinned here; CI machines cache it locally.
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _install(session: nox.Session) -> None:
    session.install(*TORCH)
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the default test suite (fast; excludes tests marked slow)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Run the slow tests: training to an IoU, resume after a kill, distributed training."""
    _install(session)
    session.run("pytest", "-m", "slow and not browser", *session.posargs)


@nox.session
def browser(session: nox.Session) -> None:
    """Drive `sera serve` in headless Chromium (needs Debian's chromium and chromium-driver)."""
    session.install(*TORCH)
    session.install("-e", ".[dev,serve]", "selenium>=4.20")
    session.run("pytest", "-m", "browser or not slow", "tests/cli/test_serve_browser.py",
                "tests/cli/test_serve_cli.py", "tests/engine/test_serving.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint with ruff, and check the package's layers with import-linter."""
    session.install("ruff", "import-linter>=2.1")
    session.run("ruff", "check", "sera_cli", "plugins", "tests", "bench", "noxfile.py")
    session.install("-e", ".", "--no-deps")  # lint-imports reads the installed package
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy."""
    _install(session)
    session.run("mypy", "sera_cli")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Print speed, memory and expert-cost figures (writes bench/results/*.json)."""
    _install(session)
    session.run("python", "bench/run_all.py", *session.posargs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Run `sera demo`: synthesize data, train the tiny model, evaluate, predict, report."""
    _install(session)
    session.run("sera", "demo", *session.posargs)
