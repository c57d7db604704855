"""Parameter counts for `sera experts list`: shipped, cached, recounted after an edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sera_cli.analysis import param_counts as param_cache
from sera_cli.analysis.param_counts import CACHE_FILE, ParamCountCache, shipped_counts

BUILTIN = Path(__file__).resolve().parents[2] / "plugins" / "sera_builtin"


def test_the_builtin_plugin_ships_up_to_date_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERA_LOAD_PLUGINS", "builtin")
    shipped = json.loads((BUILTIN / CACHE_FILE).read_text())["entries"]
    assert shipped == shipped_counts(BUILTIN), (
        "plugins/sera_builtin/param-counts.json is stale: run "
        "python -m sera_cli.analysis.param_counts plugins/sera_builtin")
    assert len(shipped) == 9  # six experts, three routers


def test_a_first_listing_of_builtin_experts_does_not_import_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom sera_cli.cli.main import run\ntry:\n"
            "    run(['experts', 'list', '--json'])\nexcept SystemExit:\n    pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    env = {**os.environ, "SERA_LOAD_PLUGINS": "builtin", "SERA_CACHE": str(tmp_path / "empty")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    listing, verdict = done.stdout.rsplit("\n", 2)[:2]
    assert verdict == "no torch"
    counts = {e["name"] + "/" + e["stage"]: e["params"] for e in json.loads(listing)["experts"]}
    assert counts["context/fusion"] == 1_051_648


def _package(root: Path, body: str) -> Path:
    package = root / "counted_pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "expert.py").write_text(body)
    return package


def test_counts_follow_the_code_not_the_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = _package(tmp_path, "from torch import nn\n"
                                 "def Expert(c):\n    return nn.Linear(c, c)\n")
    import counted_pkg  # noqa: F401  (a factory's package must be imported to be fingerprinted)

    factory = "counted_pkg.expert:Expert"
    calls = []

    def build(width: int = 4) -> object:
        from torch import nn

        calls.append(width)
        return nn.Linear(width, width)

    user = tmp_path / "user" / CACHE_FILE
    fingerprint = param_cache.source_fingerprint(package)
    param_cache.write_entries(package / CACHE_FILE,
                              {param_cache.cache_key(factory, (4,)): [fingerprint, 12345]})
    assert ParamCountCache(user).count(factory, (4,), build) == 12345  # shipped: no build
    assert calls == []

    (package / "expert.py").write_text("# edited\n" + (package / "expert.py").read_text())
    param_cache.source_fingerprint.cache_clear()
    assert param_cache.source_fingerprint(package) != fingerprint
    cache = ParamCountCache(user)
    assert cache.count(factory, (4,), build) == 20 and calls == [4]  # stale: counted again
    cache.save()
    assert ParamCountCache(user).count(factory, (4,), build) == 20 and calls == [4]  # cached
