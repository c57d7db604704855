"""`sera serve`'s checks before it serves: each mistake is one line, found before the model
loads; and `sera --help` imports neither gradio nor torch. (The page itself:
test_serve_browser.py, `nox -s browser`.)"""

from __future__ import annotations

import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import cli_env
from typer.testing import CliRunner

from sera_cli.cli.main import app


@pytest.fixture
def fake_gradio(monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable `gradio` and a model load that fails the test: these checks come first."""
    monkeypatch.setitem(sys.modules, "gradio", types.ModuleType("gradio"))
    monkeypatch.setattr("sera_cli.engine.serving.Segmenter.__init__",
                        lambda *a, **k: pytest.fail("the model was loaded"))


def serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", *args])
    return result.exit_code, result.output


def test_without_gradio_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    code, output = serve()
    assert code == 1 and "pip install 'sera[serve]'" in output and "Traceback" not in output


def test_without_a_run_it_says_how_to_train_one(fake_gradio: None, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERA_RUNS", str(tmp_path / "runs"))
    code, output = serve()
    assert code == 1 and len(output.strip().splitlines()) == 1
    assert "no trained run found" in output and "`sera demo`" in output


def test_a_port_in_use_is_named(fake_gradio: None, trained_run: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output = serve("--checkpoint", str(trained_run), "--port", str(port))
    assert code == 1 and f"cannot serve on 127.0.0.1:{port}" in output and "--port" in output


def test_an_unknown_host_is_named(fake_gradio: None, trained_run: Path) -> None:
    code, output = serve("--checkpoint", str(trained_run), "--host", "no-such-host.invalid")
    assert code == 1 and "--host no-such-host.invalid" in output


def test_help_imports_neither_gradio_nor_torch() -> None:
    code = ("import sys; from sera_cli.cli.main import run\n"
            "try:\n    run(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('gradio', 'torch', 'pandas') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=cli_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--queue-size" in result.stdout and result.stdout.strip().endswith("[]")


def test_demo_ends_with_the_serve_command(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from sera_cli.engine.demo import DemoResult

    run = tmp_path / "run"
    monkeypatch.setattr("sera_cli.engine.demo.run_demo",
                        lambda data, out, **_: DemoResult(out, out / "report.md", 0.35, []))
    result = CliRunner().invoke(app, ["demo", "--out", str(run), "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert f"sera serve --checkpoint {run}" in last
    assert "first:" not in last or "pip install 'sera[serve]'" in last
