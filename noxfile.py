"""Developer sessions: `nox -l` lists them; `nox` runs tests and lint."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

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


#: The dependencies `nox -s oldest` installs at their lowest declared version (the rest resolve).
FLOORS = ("torch", "torchvision", "transformers", "open_clip_torch", "huggingface_hub", "typer",
          "pluggy", "safetensors")


def _floors() -> list[str]:
    """"name==X" for each of FLOORS, read off pyproject.toml's "name>=X" (declared once, there)."""
    import re

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    found = dict(m.groups() for m in (re.fullmatch(r"([\w.-]+)>=([\w.]+)", d.replace(" ", ""))
                                      for d in project["dependencies"]) if m)
    missing = [name for name in FLOORS if name not in found]
    if missing:
        raise ValueError(f"pyproject.toml declares no 'name>=X' floor for {missing}")
    return [f"{name}=={found[name]}" for name in FLOORS]


@nox.session(default=False)
def oldest(session: nox.Session) -> None:
    """Run the fast suite on the lowest versions pyproject.toml declares (old torch: ~3 GB)."""
    constraints = Path(session.create_tmp()) / "floors.txt"
    constraints.write_text("\n".join(_floors()) + "\n")
    session.install("-c", str(constraints), "-e", ".[dev]")
    names = ", ".join(repr(f.split("==")[0]) for f in _floors())
    session.run("python", "-c", "from importlib.metadata import version; "
                f"print('floors:', ', '.join(f'{{n}} {{version(n)}}' for n in ({names})))")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Print speed, memory and expert-cost figures (writes bench/results/*.json)."""
    _install(session)
    session.run("python", "bench/run_all.py", *session.posargs)


@nox.session(default=False)
def ablation(session: nox.Session) -> None:
    """The experts' ablation in miniature (bench/ablation.py; rewrites docs/ablation.md's table)."""
    _install(session)
    session.run("python", "bench/ablation.py", *session.posargs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Run `sera demo`: synthesize data, train the tiny model, evaluate, predict, report."""
    _install(session)
    session.run("sera", "demo", *session.posargs)


#: What mutmut calls a mutant that the tests detected; every other outcome counts against the score.
KILLED = {"killed", "timeout"}


@nox.session(default=False)
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut) of metrics, letterbox, routing, losses, schedule, checkpoints."""
    _install(session)
    session.install("mutmut==3.8.1")
    stage = Path(session.create_tmp()).resolve() / "tree"
    shutil.rmtree(stage, ignore_errors=True)
    root = Path(".").resolve()
    at_root = {".git", ".nox", ".venv", "mutants", "runs", "bench"}  # not sera_cli/runs

    def skipped(folder: str, names: list[str]) -> list[str]:
        top = Path(folder).resolve() == root
        return [n for n in names if (top and n in at_root) or n == "__pycache__"
                or n.endswith((".egg-info", "_cache"))]

    shutil.copytree(root, stage, ignore=skipped)
    shutil.move(stage / "plugins" / "sera_builtin", stage / "sera_builtin")
    # torch's OpenMP threads do not survive mutmut's fork per mutant: one thread, no hangs
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SERA_LOAD_PLUGINS": "builtin"}
    with session.chdir(stage):
        session.run("mutmut", "run", *session.posargs, env=env)
        listing = session.run("mutmut", "results", "--all", "true", env=env, silent=True)
    outcomes = dict(line.strip().rsplit(": ", 1) for line in str(listing).splitlines()
                    if ": " in line)
    by_module: dict[str, Counter[str]] = {}
    for name, outcome in outcomes.items():
        module = name.split(".x", 1)[0]
        by_module.setdefault(module, Counter())[outcome] += 1
    total = Counter(outcomes.values())
    killed = sum(total[o] for o in KILLED)
    summary = {"score": 100.0 * killed / max(len(outcomes), 1), "mutants": len(outcomes),
               "outcomes": dict(total), "by_module": {m: dict(c) for m, c in by_module.items()},
               "not_killed": sorted(n for n, o in outcomes.items() if o not in KILLED)}
    results = Path("bench/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / "mutants.json").write_text(json.dumps(summary, indent=2))
    for module, counts in sorted(by_module.items()):
        session.log(f"{module}: {dict(counts)}")
    session.log(f"mutation score {summary['score']:.1f}% of {len(outcomes)} mutants "
                f"({dict(total)}); bench/results/mutants.json lists the survivors")
