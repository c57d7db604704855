"""Parameter counts for ``sera experts list``, without importing torch when they are known.

Counting an expert's parameters means building it, and building imports torch: about 4 of the
4.7 s a first ``sera experts list`` took here. A count depends only on the factory's code and the
width it is built at, so it is looked up under a key made of the factory and the width, and
trusted only while a fingerprint of the factory's package (the contents of every ``.py`` file
beside its module) is unchanged; editing any of them recounts.

Counts are found in two places: the user's cache (``$SERA_CACHE/param-counts.json``, written after
a recount) and a ``param-counts.json`` that a plugin may ship beside its modules, so that even the
first listing after an install imports no torch. The built-in plugin ships one; regenerate it
with ``python -m sera_cli.analysis.param_counts plugins/sera_builtin`` (a test says when it is
stale).
Factories given as callables, or whose package is not imported yet, are counted every time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

CACHE_FILE = "param-counts.json"
# Widths at which parameters are counted: sera-b's adapter and fusion widths.
REFERENCE_WIDTH = {"adapter": 128, "fusion": 512}
ROUTER_REFERENCE = (512, 4, 2)  # channels, experts, top-k
CACHE_VERSION = 2


def count_trainable(build: Callable[[], Any]) -> int | str:
    """Trainable parameters of a freshly built module; a factory that raises is reported."""
    try:
        module = build()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _module_folder(module_name: str) -> Path | None:
    """The folder of a factory's module, without importing it.

    ``find_spec`` of ``a.b`` imports ``a``, so a module whose parent package is not imported
    yet (``torch.nn``) gets no folder rather than paying for that import.
    """
    parent = module_name.rpartition(".")[0]
    if parent and parent not in sys.modules:
        return None
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin).parent


@cache
def source_fingerprint(folder: Path) -> str:
    """A hash of the names and contents of the ``.py`` files in ``folder``: the same in every
    checkout and install of the same code, different after any edit."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_key(factory: str, args: tuple[int, ...]) -> str:
    return json.dumps([factory, list(args)])


def _read_entries(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


@cache
def _shipped_entries(folder: Path) -> dict[str, Any]:
    return _read_entries(folder / CACHE_FILE)


def write_entries(path: Path, entries: dict[str, Any]) -> None:
    from sera_cli.runs.atomic import atomic_write

    atomic_write(path, json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1,
                                  sort_keys=True) + "\n")


class ParamCountCache:
    """Counts by (factory, build arguments), each stored with the fingerprint of the factory's
    files, so an edited plugin replaces its entry instead of adding one.

    Best effort: an unreadable file is treated as empty and a failed write is ignored.
    """

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from sera_cli.data.default import cache_root

            path = cache_root() / CACHE_FILE
        self.path = path
        self.entries: dict[str, Any] = _read_entries(path)
        self.changed = False

    def count(self, factory: Callable[..., Any] | str, args: tuple[int, ...],
              build: Callable[[], Any]) -> int | str:
        """The known count, else ``count_trainable(build)`` (remembered unless it failed)."""
        folder = _module_folder(factory.partition(":")[0]) if isinstance(factory, str) else None
        if folder is None or not isinstance(factory, str):
            return count_trainable(build)
        fingerprint, key = source_fingerprint(folder), cache_key(factory, args)
        for entries in (self.entries, _shipped_entries(folder)):
            entry = entries.get(key)
            if (isinstance(entry, list) and len(entry) == 2 and entry[0] == fingerprint
                    and isinstance(entry[1], int)):
                return entry[1]
        result = count_trainable(build)
        if isinstance(result, int):
            self.entries[key] = [fingerprint, result]
            self.changed = True
        return result

    def save(self) -> None:
        if not self.changed:
            return
        from sera_cli.errors import SeraError

        try:
            write_entries(self.path, self.entries)
        except SeraError:
            pass  # a read-only cache folder only costs the next listing the recount
        self.changed = False


def shipped_counts(package_folder: Path) -> dict[str, Any]:
    """The entries a plugin package should ship: every expert and router it registers, counted
    at the widths ``sera experts list`` and ``sera routers list`` use."""
    from sera_cli.hookspecs import ExpertSpec, RouterSpec
    from sera_cli.registry import default_registry

    registry = default_registry()
    fingerprint = source_fingerprint(package_folder.resolve())
    specs: list[tuple[ExpertSpec | RouterSpec, tuple[int, ...]]] = [
        (spec, (REFERENCE_WIDTH[stage],)) for (stage, _), spec in registry.experts.items()]
    specs += [(spec, ROUTER_REFERENCE) for spec in registry.routers.values()]
    entries = {}
    for spec, args in specs:
        factory = spec.factory
        if not isinstance(factory, str):
            continue
        folder = _module_folder(factory.partition(":")[0])
        if folder is not None and folder.resolve() == package_folder.resolve():
            count = count_trainable(partial(spec.build, *args))
            if isinstance(count, int):
                entries[cache_key(factory, args)] = [fingerprint, count]
    return entries


if __name__ == "__main__":
    target = Path(sys.argv[1])
    found = shipped_counts(target)
    if not found:
        sys.exit(f"no installed expert or router has its module in {target}")
    write_entries(target / CACHE_FILE, found)
    print(f"wrote {len(found)} counts to {target / CACHE_FILE}")
