"""`sera train` options: a router without experts is not a late failure, and --resume never
drops another option silently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import fails, metrics_records, sera


def test_no_experts_with_a_router_named_trains_and_saves(synth_data_root: Path,
                                                         tmp_path: Path) -> None:
    """A router behind no experts is not used, so it is neither built nor required: the run
    trains, checkpoints and records no router."""
    run = tmp_path / "run"
    result = sera("train", "--data", synth_data_root, "--experts", "", "--router", "topk",
                  "--max-steps", "2", "--batch-size", "4", "--out", run, "--json")
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["experts"] == [] and config["train"]["max_steps"] == 2
    assert "router topk" not in config["plugins"]
    assert (run / "checkpoints" / "last").read_text().startswith("step-")
    assert sera("eval", "--checkpoint", run, "--split", "val", "--json").exit_code == 0


def test_resume_refuses_an_option_that_would_change_the_run(trained_run: Path) -> None:
    fails(sera("train", "--resume", trained_run, "--lr", "0.5", "--topk", "1"),
          f"--resume {trained_run}", "--lr, --topk would change it")


def test_resume_refuses_a_config_file(trained_run: Path, tmp_path: Path) -> None:
    config = tmp_path / "more.toml"
    config.write_text("lr = 0.5\n")
    fails(sera("train", "--resume", trained_run, "--config", config), str(config))


def test_resume_applies_options_that_cannot_change_the_result(trained_run: Path,
                                                              tmp_path: Path) -> None:
    """--log-every only changes how often it logs (applied); an unchanged --lr is no change."""
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    checkpoint = run / "checkpoints" / (run / "checkpoints" / "last").read_text()
    config = json.loads((checkpoint / "config.json").read_text())
    done, config["train"]["max_steps"] = config["train"]["max_steps"], 6  # as if cut short
    (checkpoint / "config.json").write_text(json.dumps(config))
    result = sera("train", "--resume", run, "--log-every", "1",
                  "--lr", str(config["train"]["lr"]), "--json")
    assert result.exit_code == 0, result.output
    logged = [r["step"] for r in metrics_records(run) if "loss" in r and r["step"] > done]
    assert logged == list(range(done + 1, 7))  # every step, not every 10th
