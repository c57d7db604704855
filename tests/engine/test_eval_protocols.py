"""`sera eval --protocol` on a hand-built gRefCOCO set with a model whose answers are fixed, so
that every figure of every protocol is worked out by hand (docs/metrics.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import GREF_SIDE, build_grefcoco, gref_box, sera
from PIL import Image

from sera_cli.config import preset
from sera_cli.data.tokenize import tokenize
from sera_cli.engine.evaluation import evaluate_plan, plan_eval
from sera_cli.engine.loading import LoadedRun
from sera_cli.model.sera import SeraOutput

A, B = 11, 12  # |A| = |B| = 1200 pixels, apart


class FixedAnswers(torch.nn.Module):
    """A model that answers each sentence with a given mask and no-target logit (None: a model
    without the no-target head), at the input resolution, so that no resampling blurs them."""

    def __init__(self, answers: dict[str, tuple[np.ndarray, float | None]]) -> None:
        super().__init__()
        self.cfg = preset("sera-tiny")
        self.cfg.image_size = GREF_SIDE
        self.answers = {tuple(tokenize([s], self.cfg.text.context_length)[0].tolist()): a
                        for s, a in answers.items()}
        self.with_head = any(nt is not None for _, nt in answers.values())

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> SeraOutput:
        found = [self.answers[tuple(row.tolist())] for row in ids]
        logits = torch.stack([torch.from_numpy(np.where(m, 10.0, -10.0)).float()[None]
                              for m, _ in found])
        no_target = torch.tensor([nt for _, nt in found]) if self.with_head else None
        return SeraOutput(logits, {}, no_target)


def _block() -> np.ndarray:
    m = np.zeros((GREF_SIDE, GREF_SIDE), bool)
    m[300:310, 300:310] = True  # 100 pixels where nothing is
    return m


#: "the red square": exactly A. "the purple star": 100 stray pixels, but the head says "no
#: target" (logit +5). "both squares": A only, half of the union A + B (IoU 0.5 exactly).
WITH_HEAD = {"the red square": (gref_box(A), -5.0), "the purple star": (_block(), 5.0),
             "both squares": (gref_box(A), -5.0)}
HEADLESS = {s: (m, None) for s, (m, _) in WITH_HEAD.items()}


def _run(root: Path, answers: dict[str, Any]) -> LoadedRun:
    config = {"train": {"dataset": "grefcoco"}, "data": {"root": str(root)}}
    return LoadedRun(root / "run", FixedAnswers(answers), config, torch.device("cpu"), 0.35)


@pytest.fixture(scope="module")
def gref_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_grefcoco(tmp_path_factory.mktemp("gref"))


def _score(run: LoadedRun, protocol: str, **kw: Any) -> dict[str, Any]:
    return evaluate_plan(run, plan_eval(run), protocol=protocol, **kw)[0]


def test_each_protocol_gives_its_hand_computed_figures(gref_root: Path) -> None:
    run = _run(gref_root, WITH_HEAD)
    sera_ = _score(run, "sera")  # IoU 1, 1 (said no target: empty = empty), 0.5
    assert sera_["protocol"] == "sera" and sera_["n"] == 3
    assert sera_["miou"] == pytest.approx(250 / 3) and sera_["oiou"] == pytest.approx(200 / 3)
    assert sera_["prec@0.5"] == 100.0 and sera_["prec@0.6"] == pytest.approx(200 / 3)
    cris = _score(run, "cris")  # 1200 / (1200 + 1e-6), 0 (U = 0), 1200 / (2400 + 1e-6)
    assert cris["miou"] == pytest.approx(100 / 3 * (1200 / (1200 + 1e-6) + 1200 / (2400 + 1e-6)))
    assert cris["prec@0.5"] == pytest.approx(100 / 3) and "oiou" not in cris
    lavt = _score(run, "lavt")  # 1, 0 (U = 0), 0.5
    assert lavt["miou"] == pytest.approx(50.0) and lavt["oiou"] == pytest.approx(200 / 3)
    assert lavt["prec@0.5"] == pytest.approx(200 / 3)
    rela = _score(run, "rela")  # TN 1 (1200 / 1200), TP 1 (0 / 0), TN 0.5 (1200 / 2400)
    assert rela["giou"] == pytest.approx(250 / 3) and rela["ciou"] == pytest.approx(200 / 3)
    assert rela["prec@0.7"] == 50.0 and rela["n_acc"] == 100.0 and rela["t_acc"] == 100.0
    assert set(rela["by_type"]) == {"no-target", "multi-target"}  # derived: untagged refs
    assert rela["by_type"]["multi-target"]["giou"] == pytest.approx(50.0)


def test_without_the_head_an_empty_mask_is_the_only_no_target(gref_root: Path) -> None:
    run = _run(gref_root, HEADLESS)
    rela = _score(run, "rela")  # TN 1, FN 0 (adds U 100), TN 0.5
    assert rela["giou"] == pytest.approx(50.0)
    assert rela["ciou"] == pytest.approx(100 * 2400 / 3700)
    assert rela["n_acc"] == 0.0 and rela["t_acc"] == 100.0
    assert _score(run, "sera")["miou"] == pytest.approx(50.0)  # 1, 0, 0.5


def test_saved_masks_are_the_model_answer(gref_root: Path, tmp_path: Path) -> None:
    _score(_run(gref_root, WITH_HEAD), "lavt", save_masks=tmp_path)
    saved = {p.name: np.asarray(Image.open(p)) > 0 for p in (tmp_path / "val").iterdir()}
    assert set(saved) == {"1_11.png", "2_21.png", "3_31.png"}
    assert np.array_equal(saved["1_11.png"], gref_box(A))
    assert not saved["2_21.png"].any()  # "no target": empty, whatever the mask head drew


def test_the_cli_labels_every_figure_with_its_protocol(gref_root: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sera_cli.engine.loading
    import sera_cli.runs.folders

    monkeypatch.setattr(sera_cli.engine.loading, "open_run",
                        lambda *a, **k: _run(gref_root, WITH_HEAD))
    monkeypatch.setattr(sera_cli.runs.folders, "resolve_run", lambda checkpoint: checkpoint)
    result = sera("eval", "--protocol", "rela", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["protocol"] == "rela" and data["results"][0]["protocol"] == "rela"
    assert data["results"][0]["n_acc"] == 100.0
    assert data["results"][0]["giou"] == pytest.approx(250 / 3)
    table = sera("eval", "--protocol", "cris")
    assert table.exit_code == 0, table.output
    assert "protocol cris" in table.output  # the title, and each figure's heading:
    assert "miou" in table.output and "oiou" not in table.output
    assert table.output.count("cris") == 1 + 6  # the title, miou and prec@0.5 ... prec@0.9
    bad = sera("eval", "--protocol", "refcoco")
    assert bad.exit_code == 1 and "--protocol 'refcoco' is not one of" in bad.output
