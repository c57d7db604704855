"""Backbone weights from the hub go through huggingface_hub, in processes of their own (it reads
HF_ENDPOINT, HF_HUB_OFFLINE and HF_HOME once, when imported, as a user's process does): a mirror
at HF_ENDPOINT fills a real cache, the filled cache loads with HF_HUB_OFFLINE=1, and a miss
offline or an unreachable endpoint is one line naming the repository, the cache folder searched
and the option that takes a local path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from fake_hub import FakeHub
from helpers import cli_env
from safetensors.torch import load_file
from tiny_weights import EXPECTED_TEXT, EXPECTED_VISION, clip_model_cfg, dinov2, save_clip

from sera_cli.config import TextConfig, VisionConfig, preset

#: Builds each case's backbones as `sera train` does (the weights' config first), then saves
#: the outputs on fixed inputs, or prints the one-line error.
CHILD = r"""
import json, sys
import torch
from safetensors.torch import save_file
from sera_cli.config import ModelConfig
from sera_cli.errors import SeraError
from sera_cli.model.backbones import build_clip_text, build_dinov2, match_weights

cases, out = json.loads(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
pixels = torch.randn(2, 3, 32, 32)
ids = torch.tensor([[49406, 320, 1929, 3075, 49407] + [0] * 12])
for name, case in cases.items():
    cfg = ModelConfig.from_dict(case["model"])
    try:
        cfg = match_weights(cfg) if case["fresh"] else cfg
        vision = build_dinov2(cfg.vision, cfg.image_size).eval()
        text = build_clip_text(cfg.text).eval()
    except SeraError as exc:
        print(json.dumps({"case": name, "error": str(exc)}))
        continue
    with torch.no_grad():
        save_file({"vision": vision(pixels).last_hidden_state, "text": text(ids)[1]},
                  f"{out}/{name}.safetensors")
    print(json.dumps({"case": name, "class": type(vision).__name__, "vision": cfg.vision.arch,
                      "quick_gelu": cfg.text.quick_gelu}))
"""

REG, PLAIN = "facebook/dinov2-with-registers-base", "facebook/dinov2-base"
OPENAI, LAION = "timm/vit_base_patch16_clip_224.openai", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"


def case(vision: VisionConfig, text: TextConfig, fresh: bool = True) -> dict[str, Any]:
    cfg = preset("sera-tiny")
    cfg.vision, cfg.text = vision, text
    return {"model": cfg.to_dict(), "fresh": fresh}


def with_(section: Any, **changes: Any) -> Any:
    return type(section)(**{**section.__dict__, **changes})


CASES = {
    # sera-b's sources (registers, the openai tag) with the activation left wrong on purpose
    "registers_openai": case(with_(EXPECTED_VISION, hub_id=REG),
                             with_(EXPECTED_TEXT, quick_gelu=False)),
    # the preset's registers arch and QuickGELU, pointed at a plain DINOv2 and a LAION CLIP
    "plain_laion": case(with_(EXPECTED_VISION, hub_id=PLAIN),
                        with_(EXPECTED_TEXT, pretrained="laion2b_s34b_b88k")),
    "hf_hub": case(with_(EXPECTED_VISION, hub_id=None),
                   with_(EXPECTED_TEXT, pretrained=f"hf-hub:{LAION}", quick_gelu=False)),
    # a run whose config is fixed (a saved run) does not take other weights
    "fixed_run": case(with_(EXPECTED_VISION, hub_id=PLAIN), with_(EXPECTED_TEXT, pretrained=None),
                      fresh=False),
}


def child(cases: dict[str, Any], out: Path, **env: str) -> dict[str, dict[str, Any]]:
    out.mkdir(exist_ok=True)
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases), str(out)],
                            capture_output=True, text=True, env=cli_env(**env), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return {r["case"]: r for r in map(json.loads, result.stdout.splitlines())}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny hub repositories and the library models they were saved from."""
    root = tmp_path_factory.mktemp("hub")
    models: dict[str, Any] = {}
    for repo, kind in ((REG, "registers"), (PLAIN, "plain")):
        models[repo] = dinov2(kind)
        models[repo].save_pretrained(root / repo)
    models[OPENAI] = save_clip(root / OPENAI, clip_model_cfg(quick_gelu=True), seed=1)
    config = json.loads((root / OPENAI / "open_clip_config.json").read_text())
    del config["model_cfg"]["quick_gelu"]  # the tag's own entry says QuickGELU, and it wins
    (root / OPENAI / "open_clip_config.json").write_text(json.dumps(config))
    models[LAION] = save_clip(root / LAION, clip_model_cfg(quick_gelu=False), seed=2)
    return {"root": root, "models": models}


def expected_outputs(models: dict[str, Any], vision: str | None, text: str
                     ) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 32, 32)
    ids = torch.nn.functional.pad(torch.tensor([[49406, 320, 1929, 3075, 49407]]), (0, 72))
    with torch.no_grad():
        out = {"text": models[text].encode_text(ids)}
        if vision:
            out["vision"] = models[vision](pixels).last_hidden_state
    return out


def test_a_mirror_fills_the_cache_and_offline_loads_from_it(sources: dict[str, Any],
                                                           tmp_path: Path) -> None:
    hf_home, models = tmp_path / "hf", sources["models"]
    with FakeHub() as hub:
        for repo in models:
            hub.add_folder(repo, sources["root"] / repo)
        online = child(CASES, tmp_path / "online", HF_ENDPOINT=hub.endpoint,
                       HF_HOME=str(hf_home))
    assert any(r.startswith(f"GET /{REG}/resolve/main/model.safetensors") for r in hub.requests)
    assert (hf_home / "hub" / "models--facebook--dinov2-with-registers-base").is_dir()
    dead = "http://127.0.0.1:9"  # the mirror is gone: only the cache can answer
    offline = child({**CASES, "uncached": case(with_(EXPECTED_VISION, hub_id="facebook/nope"),
                                               with_(EXPECTED_TEXT, pretrained=None))},
                    tmp_path / "offline", HF_ENDPOINT=dead, HF_HUB_OFFLINE="1",
                    HF_HOME=str(hf_home))
    for results, folder in ((online, "online"), (offline, "offline")):
        assert results["registers_openai"] == {
            "case": "registers_openai", "class": "Dinov2WithRegistersModel",
            "vision": "dinov2-reg", "quick_gelu": True}
        assert results["plain_laion"] == {"case": "plain_laion", "class": "Dinov2Model",
                                          "vision": "dinov2", "quick_gelu": False}
        assert results["fixed_run"]["error"] == (
            f"DINOv2 weights '{PLAIN}': the run expects arch dinov2-reg "
            "(Dinov2WithRegistersModel), register_tokens 4; the weights hold arch dinov2 "
            "(Dinov2Model), register_tokens 0")
        for name, vision, text in (("registers_openai", REG, OPENAI),
                                   ("plain_laion", PLAIN, LAION), ("hf_hub", None, LAION)):
            got = load_file(tmp_path / folder / f"{name}.safetensors")
            for key, value in expected_outputs(models, vision, text).items():
                torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6)
    assert offline["uncached"]["error"] == (
        f"DINOv2 weights 'facebook/nope': not in the Hugging Face cache ({hf_home / 'hub'}), "
        "and HF_HUB_OFFLINE is set: fill the cache where the hub can be reached (hf download "
        "facebook/nope), or pass --vision-weights PATH (or set SERA_VISION_WEIGHTS)")


def test_an_unreachable_endpoint_fails_at_once_naming_the_repository(
        synth_data_root: Path, tmp_path: Path) -> None:
    """No run: `sera train --preset sera-b` stops on the first weights it cannot have, with one
    line (how fast is for a benchmark, not a test: no wall-clock assertion here)."""
    run, hf_home = tmp_path / "run", tmp_path / "hf"
    result = subprocess.run(
        [sys.executable, "-m", "sera_cli", "train", "--preset", "sera-b", "--data",
         str(synth_data_root), "--max-steps", "1", "--out", str(run)],
        capture_output=True, text=True, timeout=300,
        env=cli_env(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(hf_home)))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f"error: DINOv2 weights '{REG}': not in the Hugging Face cache ({hf_home / 'hub'}), and "
        "the hub at http://127.0.0.1:9 cannot be reached ("), lines
    assert lines[-1].endswith(f"(hf download {REG}), or pass --vision-weights PATH (or set "
                              "SERA_VISION_WEIGHTS)")
    assert not (run / "config.json").exists()
