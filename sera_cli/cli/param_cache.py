"""Parameter counts for ``sera experts list``, cached on disk so that listing skips torch.

Counting an expert's parameters means building it, and building imports torch: 2-4 s of the
4.6 s that ``sera experts list`` took (``python -X importtime``). A count depends only on the
factory's code and the width it is built at, so it is kept under a key made of the factory, the
width, the plugin's distribution and version, and the size and modification time of every ``.py``
file beside the factory's module; editing any of them, or upgrading the plugin, recounts.
Factories given as callables, or whose package is not imported yet, are counted every time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_FILE = "param-counts.json"
CACHE_VERSION = 1


def count_trainable(build: Callable[[], Any]) -> int | str:
    """Trainable parameters of a freshly built module; a factory that raises is reported."""
    try:
        module = build()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _source_fingerprint(module_name: str) -> str | None:
    """Sizes and times of the ``.py`` files beside the module, without importing it.

    ``find_spec`` of ``a.b`` imports ``a``, so a module whose parent package is not imported
    yet (``torch.nn``) gets no fingerprint rather than paying for that import.
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
    stats = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                   for p in Path(spec.origin).parent.glob("*.py"))
    return hashlib.sha256(repr(stats).encode()).hexdigest()[:16]


class ParamCountCache:
    """Counts by (factory, build arguments, plugin source), each stored with the fingerprint of
    the factory's files, so an edited plugin replaces its entry instead of adding one.

    Best effort: an unreadable file is treated as empty and a failed write is ignored.
    """

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from sera_cli.data.default import cache_root

            path = cache_root() / CACHE_FILE
        self.path = path
        self.entries: dict[str, Any] = self._read()
        self.changed = False

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def count(self, factory: Callable[..., Any] | str, args: tuple[int, ...], source: str,
              build: Callable[[], Any]) -> int | str:
        """The cached count, else ``count_trainable(build)`` (remembered unless it failed)."""
        fingerprint = (_source_fingerprint(factory.partition(":")[0])
                       if isinstance(factory, str) else None)
        if fingerprint is None:
            return count_trainable(build)
        key = json.dumps([factory, list(args), source])
        entry = self.entries.get(key)
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
        from sera_cli.checkpoint import atomic_write
        from sera_cli.errors import SeraError

        try:
            atomic_write(self.path, json.dumps({"version": CACHE_VERSION,
                                                "entries": self.entries}, indent=1))
        except SeraError:
            pass  # a read-only cache folder only costs the next listing the recount
        self.changed = False
