"""One-line errors: --debug keeps the traceback, DataLoader workers' errors keep their line, and
no code path unpickles except the refs reader.

The CLI runs in-process (typer's CliRunner on the real app, `helpers.sera`), so that dozens of
cases cost a model load each rather than a Python start each.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import fails, sera

from sera_cli.cli.main import ENV_DEBUG
from sera_cli.errors import SeraError

REPO = Path(__file__).resolve().parents[2]


def test_debug_keeps_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-run"
    for args, env in ((["--debug"], ""), ([], "1")):
        monkeypatch.setenv(ENV_DEBUG, env)
        result = sera(*args, "eval", "--checkpoint", missing)
        assert result.exit_code == 1 and isinstance(result.exception, SeraError)
        assert str(missing) in str(result.exception)


def test_worker_errors_keep_their_one_line(trained_run: Path, synth_data_root: Path,
                                           tmp_path: Path) -> None:
    """A bad image met inside a DataLoader worker is reported like one met in the main process
    (torch re-raises it with the worker's traceback pasted into the message)."""
    data = tmp_path / "data"
    shutil.copytree(synth_data_root, data)
    for path in (data / "images/mscoco/images/train2014").iterdir():
        path.write_bytes(path.read_bytes()[:200])
    result = sera("eval", "--checkpoint", trained_run, "--data", data, "--split", "val",
                  "--workers", "1")
    fails(result, "cannot read image", str(data))


_UNSAFE_LOADS = re.compile(
    r"\bpickle\.loads?\(|\bcPickle\b|\bdill\b|\bjoblib\.load\(|\bshelve\.|\bmarshal\.loads?\(|"
    r"\byaml\.(?:unsafe_)?load\(|\bUnpickler\(|allow_pickle\s*=\s*True|"
    r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)"
)


def test_no_code_path_unpickles_except_the_refs_reader() -> None:
    allowed = {REPO / "sera_cli" / "data" / "safe_pickle.py"}
    found = []
    for folder in ("sera_cli", "plugins"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _UNSAFE_LOADS.search(line) and path not in allowed:
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
    reader = (REPO / "sera_cli/data/safe_pickle.py").read_text()
    assert "def find_class" in reader and "pickle.load(" not in reader
