"""The four scoring protocols on hand-built cases where they disagree (docs/metrics.md).

Masks are 480 x 480 unless a case needs another size, so that LAVT's resize to 480 x 480 is the
identity and every protocol scores the same pixels; each expected figure is worked out by hand
in the comment beside it."""

from __future__ import annotations

import numpy as np
import pytest

from sera_cli.analysis.metrics import PROTOCOLS, MaskScorer, protocol_named
from sera_cli.errors import SeraError

SIDE = 480


def _mask(pixels: int, start: int = 0, side: int = SIDE) -> np.ndarray:
    """A bool mask with ``pixels`` pixels on, in raster order from ``start``."""
    m = np.zeros(side * side, bool)
    m[start:start + pixels] = True
    return m.reshape(side, side)


def _scores(protocol: str, cases: list[tuple], threshold: float = 0.35) -> dict:
    scorer = MaskScorer(protocol, threshold)
    for case in cases:
        scorer.update(*case)
    return scorer.result()


#: I = 1, U = 2 (IoU exactly 0.5) and I = 7, U = 10 (IoU exactly 0.7)
EXACT = [(_mask(2), _mask(1)), (_mask(10), _mask(7))]


def test_an_iou_exactly_at_the_threshold() -> None:
    sera = _scores("sera", EXACT)
    assert sera["miou"] == pytest.approx(60.0) and sera["oiou"] == pytest.approx(100 * 8 / 12)
    assert sera["prec@0.5"] == 100.0 and sera["prec@0.7"] == 50.0  # IoU >= X
    assert sera["prec@0.6"] == 50.0 and sera["prec@0.8"] == 0.0

    cris = _scores("cris", EXACT)  # I / (U + 1e-6), and IoU > X
    assert cris["miou"] == pytest.approx(50 * (1 / (2 + 1e-6) + 7 / (10 + 1e-6)), rel=1e-12)
    assert cris["miou"] < 60.0
    # 0.4999998 is not above 0.5, 0.6999999 is not above 0.7 (but above 0.5 and 0.6)
    assert cris["prec@0.5"] == 50.0 and cris["prec@0.6"] == 50.0 and cris["prec@0.7"] == 0.0
    assert "oiou" not in cris  # CRIS reports mIoU only

    lavt = _scores("lavt", EXACT)  # 480 x 480 already: the same pixels, IoU >= X
    assert lavt["miou"] == pytest.approx(60.0) and lavt["oiou"] == pytest.approx(100 * 8 / 12)
    assert lavt["prec@0.5"] == 100.0 and lavt["prec@0.7"] == 50.0

    rela = _scores("rela", EXACT)
    assert rela["giou"] == pytest.approx(60.0) and rela["ciou"] == pytest.approx(100 * 8 / 12)
    assert rela["prec@0.7"] == 50.0 and rela["prec@0.8"] == 0.0  # >= X, 0.7 to 0.9 only
    assert "prec@0.5" not in rela
    assert rela["n_acc"] is None  # no no-target sample to count
    assert rela["t_acc"] == 100.0  # both masks non-empty: the model named a target each time


def test_a_tiny_object_that_resizing_to_480_erases() -> None:
    # 960 x 960, one pixel at (0, 0), predicted exactly. LAVT's nearest resize keeps the source
    # pixels 1, 3, 5, ... of each row and column, so the object is gone from the ground truth;
    # the bilinear prediction at (0, 0) is 0.25 (a quarter of the pixel), under 0.35. U = 0.
    gt = np.zeros((960, 960), bool)
    gt[0, 0] = True
    case = [(gt.copy(), gt)]
    assert _scores("sera", case)["miou"] == 100.0
    assert _scores("cris", case)["miou"] == pytest.approx(100 / (1 + 1e-6))
    lavt = _scores("lavt", case)
    assert lavt["miou"] == 0.0 and lavt["prec@0.5"] == 0.0  # U = 0 counts as IoU 0
    assert lavt["oiou"] is None  # sum U = 0: LAVT would divide by zero
    assert _scores("rela", case)["giou"] == 100.0  # scored at the original size


#: Two no-target samples (empty ground truth), one answered by an empty mask, one by 3 pixels;
#: and one targeted sample segmented exactly (I = U = 4).
EMPTY = [(_mask(0), _mask(0)), (_mask(3, 100), _mask(0)), (_mask(4, 200), _mask(4, 200))]


def test_an_empty_ground_truth_and_a_model_without_the_no_target_head() -> None:
    sera = _scores("sera", EMPTY)  # IoU 1, 0, 1
    assert sera["miou"] == pytest.approx(200 / 3) and sera["oiou"] == pytest.approx(400 / 7)
    cris = _scores("cris", EMPTY)  # IoU 0 (0 / 1e-6), 0, 4 / (4 + 1e-6)
    assert cris["miou"] == pytest.approx(100 / 3 * 4 / (4 + 1e-6))
    lavt = _scores("lavt", EMPTY)  # U = 0 counts 0: IoU 0, 0, 1
    assert lavt["miou"] == pytest.approx(100 / 3) and lavt["oiou"] == pytest.approx(400 / 7)
    rela = _scores("rela", EMPTY)  # empty mask = "no target": TP, FN (adds U 3), TN
    assert rela["giou"] == pytest.approx(200 / 3)
    assert rela["ciou"] == pytest.approx(400 / 7)  # (0 + 0 + 4) / (0 + 3 + 4)
    assert rela["prec@0.7"] == 100.0  # over the one targeted sample
    assert rela["n_acc"] == 50.0 and rela["t_acc"] == 100.0


def test_a_no_target_head_empties_the_mask_and_rela_counts_its_answers() -> None:
    cases = [
        (_mask(0), _mask(0), None, 0.9),  # TP: says no target, and there is none
        (_mask(3, 100), _mask(0), None, 0.2),  # FN: a mask of 3 pixels where there is nothing
        (_mask(4, 200), _mask(4, 200), None, 0.8),  # FP: a perfect mask, but "no target"
        (_mask(2, 300), _mask(4, 300), None, 0.1),  # TN: I = 2, U = 4
    ]
    rela = _scores("rela", cases)
    assert rela["giou"] == pytest.approx(100 * (1 + 0 + 0 + 0.5) / 4)
    assert rela["ciou"] == pytest.approx(100 * 2 / 11)  # I: 0 + 0 + 0 + 2; U: 0 + 3 + 4 + 4
    assert rela["prec@0.7"] == 0.0 and rela["n_acc"] == 50.0 and rela["t_acc"] == 50.0
    sera = _scores("sera", cases)  # "no target" empties the mask: IoU 1, 0, 0, 0.5
    assert sera["miou"] == pytest.approx(37.5) and sera["oiou"] == pytest.approx(100 * 2 / 11)


def test_figures_are_per_type_and_none_without_samples() -> None:
    scorer = MaskScorer("rela")
    scorer.update(_mask(0), _mask(0), "no-target", 0.9)
    scorer.update(_mask(4), _mask(4), "multi-target", 0.1)
    result = scorer.result()
    assert result["protocol"] == "rela" and set(result["by_type"]) == {"multi-target",
                                                                       "no-target"}
    no_target = result["by_type"]["no-target"]
    assert no_target["n_acc"] == 100.0 and no_target["t_acc"] is None
    assert no_target["prec@0.7"] is None and no_target["ciou"] is None  # sum U = 0
    empty = MaskScorer("cris").result()
    assert empty == {"protocol": "cris", "n": 0, "miou": None,
                     **{f"prec@{t}": None for t in (0.5, 0.6, 0.7, 0.8, 0.9)}}


def test_every_protocol_names_its_source_and_unknown_names_are_refused() -> None:
    assert list(PROTOCOLS) == ["sera", "cris", "lavt", "rela"]
    assert all(p.source for p in PROTOCOLS.values())
    with pytest.raises(SeraError, match="--protocol 'reIa' is not one of sera, cris, lavt, rela"):
        protocol_named("reIa")
