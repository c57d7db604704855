"""`sera train`, `sera predict`, `sera eval` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_env
from PIL import Image


def sera(*args: str, runs: Path | None = None, cwd: Path | None = None,
         ) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    if runs is not None:
        env["SERA_RUNS"] = str(runs)
    return subprocess.run([sys.executable, "-m", "sera_cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {"jpeg": folder / "wide.jpg", "gray": folder / "gray.png"}
    Image.fromarray(rng.integers(0, 255, (123, 301, 3), dtype=np.uint8)).save(paths["jpeg"])
    Image.fromarray(rng.integers(0, 255, (97, 64), dtype=np.uint8), "L").save(paths["gray"])
    return paths


@pytest.mark.parametrize("kind,size", [("jpeg", (301, 123)), ("gray", (64, 97))])
def test_predict_writes_a_mask_of_the_image_size(trained_run: Path, images: dict[str, Path],
                                                 tmp_path: Path, kind: str,
                                                 size: tuple[int, int]) -> None:
    out, over = tmp_path / "mask.png", tmp_path / "over.png"
    result = sera("predict", str(images[kind]), "the red circle", "--checkpoint",
                  str(trained_run), "--out", str(out), "--overlay", str(over), "--json")
    assert result.returncode == 0, result.stderr
    mask = Image.open(out)
    assert mask.size == size and mask.mode == "L"
    assert set(np.unique(np.asarray(mask))) <= {0, 255}
    assert Image.open(over).size == size
    data = json.loads(result.stdout)
    assert (data["width"], data["height"]) == size
    assert data["area"] == int((np.asarray(mask) > 0).sum())
    if data["area"]:
        x0, y0, x1, y1 = data["box"]
        assert 0 <= x0 <= x1 < size[0] and 0 <= y0 <= y1 < size[1]
    assert set(data["routing"]["fusion"]) == {"spatial", "context", "boundary", "shape"}
    assert sum(data["routing"]["fusion"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_batch_loads_once_and_writes_each(trained_run: Path, images: dict[str, Path],
                                                  tmp_path: Path) -> None:
    batch = tmp_path / "batch.tsv"
    batch.write_text(f"# image\texpression\n{images['jpeg']}\tleft one\n"
                     f"{images['gray']}\tthe biggest thing\n")
    result = sera("predict", "--batch", str(batch), "--checkpoint", str(trained_run),
                  "--out-dir", str(tmp_path / "preds"), "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["expression"] for r in records] == ["left one", "the biggest thing"]
    assert all(Path(r["mask"]).is_file() and Path(r["overlay"]).is_file() for r in records)


def test_predict_uses_the_latest_run(trained_run: Path, images: dict[str, Path],
                                     tmp_path: Path) -> None:
    result = sera("predict", str(images["gray"]), "top one", "--json", runs=trained_run.parent,
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "gray.mask.png").is_file()
    missing = sera("predict", str(images["gray"]), "top one", runs=tmp_path / "none")
    assert missing.returncode == 1
    assert "no trained run found" in missing.stderr and "Traceback" not in missing.stderr


def test_eval_reports_every_metric_per_split_and_type(trained_run: Path, tmp_path: Path) -> None:
    result = sera("eval", "--checkpoint", str(trained_run), "--split", "val,testA", "--json",
                  "--save-masks", str(tmp_path / "masks"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["threshold"] == 0.35
    assert [r["split"] for r in data["results"]] == ["val", "testA"]
    for r in data["results"]:
        assert {"miou", "oiou", "prec@0.5", "prec@0.9", "n", "by_type"} <= set(r)
        assert 0 <= r["miou"] <= 100
        gates = r["routing"]["fusion"]["all"]
        # gates sum to 1 per sample; in bf16 (--precision auto here) to within 2^-8
        assert sum(g["gate"] for g in gates.values()) == pytest.approx(100.0, abs=0.4)
        written = list((tmp_path / "masks" / r["split"]).glob("*_*.png"))
        assert len(written) == r["n"]
    table = sera("eval", "--checkpoint", str(trained_run), "--split", "val")
    assert table.returncode == 0 and "miou" in table.stdout


def test_eval_unknown_split_lists_known(trained_run: Path) -> None:
    result = sera("eval", "--checkpoint", str(trained_run), "--split", "tset")
    assert result.returncode == 1
    assert "unknown split 'tset'" in result.stderr and "testA" in result.stderr


def test_train_cli_runs_and_names_bad_options(synth_data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r1"
    result = sera("train", "--data", str(synth_data_root), "--max-steps", "2", "--batch-size",
                  "4", "--out", str(run), "--experts", "spatial,boundary", "--topk", "1",
                  "--json")
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["experts"] == ["spatial", "boundary"]
    assert config["model"]["topk"] == 1 and config["train"]["max_steps"] == 2
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps"] == 2

    bad = sera("train", "--topk", "5")
    assert bad.returncode == 1 and "--topk 5 is out of range" in bad.stderr
    config_file = tmp_path / "c.toml"
    config_file.write_text('lr = 0.001\nlearning_rate = 3\n')
    bad = sera("train", "--config", str(config_file))
    assert bad.returncode == 1 and "unknown key 'learning_rate'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_config_file_values_are_overridden_by_options(synth_data_root: Path,
                                                      tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"data: {synth_data_root}\nmax-steps: 1\nbatch-size: 4\n"
                           "experts: [shape]\ntopk: 1\nlr: 0.5\n")
    run = tmp_path / "run"
    result = sera("train", "--config", str(config_file), "--lr", "0.002", "--out", str(run))
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["lr"] == 0.002 and config["model"]["experts"] == ["shape"]


def test_out_in_a_config_file_names_the_run_folder(synth_data_root: Path, tmp_path: Path
                                                    ) -> None:
    run = tmp_path / "from-config"
    config_file = tmp_path / "c.toml"
    config_file.write_text(f'data = "{synth_data_root}"\nmax-steps = 1\nbatch-size = 4\n'
                           f'experts = "shape"\ntopk = 1\nout = "{run}"\n')
    result = sera("train", "--config", str(config_file), runs=tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    assert (run / "config.json").is_file() and not (tmp_path / "runs").exists()
