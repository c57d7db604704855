from __future__ import annotations

import numpy as np
import pytest

from sera_cli.analysis.metrics import MaskScorer
from sera_cli.config import THRESHOLD_DEFAULT


def _mask(n: int, on: list[int]) -> np.ndarray:
    m = np.zeros(n, bool)
    m[on] = True
    return m.reshape(1, n)


def test_perfect() -> None:
    s = MaskScorer()
    gt = _mask(10, [1, 2, 3])
    assert s.update(gt.copy(), gt) == 1.0
    r = s.result()
    assert r["n"] == 1 and r["miou"] == 100.0 and r["oiou"] == 100.0
    assert all(r[f"prec@{t}"] == 100.0 for t in (0.5, 0.6, 0.7, 0.8, 0.9))
    assert "by_type" not in r


def test_empty_prediction_and_empty_both() -> None:
    s = MaskScorer()
    assert s.update(_mask(10, []), _mask(10, [4])) == 0.0
    assert s.update(_mask(10, []), _mask(10, [])) == 1.0  # empty union counts as 1
    r = s.result()
    assert r["miou"] == 50.0
    assert r["oiou"] == 0.0  # intersection 0 over union 1
    assert r["prec@0.5"] == 50.0


def test_all_empty_split_scores_full() -> None:
    s = MaskScorer()
    s.update(_mask(4, []), _mask(4, []))
    assert s.result()["oiou"] == 100.0 and s.result()["miou"] == 100.0


def test_partial_overlap() -> None:
    s = MaskScorer()
    iou = s.update(_mask(10, [0, 1, 2, 3]), _mask(10, [2, 3, 4, 5]))
    assert iou == pytest.approx(2 / 6)


def test_miou_differs_from_oiou_and_thresholds_are_inclusive() -> None:
    s = MaskScorer()
    s.update(_mask(20, [0, 1]), _mask(20, [0]), "spatial")  # I=1, U=2: IoU 0.5
    s.update(_mask(20, list(range(10))), _mask(20, list(range(8))), "size")  # I=8, U=10: IoU 0.8
    s.update(_mask(20, [0, 1, 2]), _mask(20, [0, 1, 2, 3, 4]))  # I=3, U=5: IoU 0.6, no type
    r = s.result()
    assert r["n"] == 3
    assert r["miou"] == pytest.approx(100 * (0.5 + 0.8 + 0.6) / 3)
    assert r["oiou"] == pytest.approx(100 * 12 / 17)
    assert r["prec@0.5"] == 100.0  # 0.5 >= 0.5
    assert r["prec@0.6"] == pytest.approx(200 / 3)  # 0.6 >= 0.6
    assert r["prec@0.7"] == pytest.approx(100 / 3)
    assert r["prec@0.8"] == pytest.approx(100 / 3)  # 0.8 >= 0.8
    assert r["prec@0.9"] == 0.0
    assert set(r["by_type"]) == {"size", "spatial"}
    assert r["by_type"]["spatial"]["miou"] == 50.0 and r["by_type"]["spatial"]["n"] == 1
    assert r["by_type"]["size"]["oiou"] == pytest.approx(80.0)


def test_two_samples_exact_miou_vs_oiou() -> None:
    s = MaskScorer()
    s.update(_mask(20, [0, 1]), _mask(20, [0]))  # 1/2
    s.update(_mask(20, list(range(10))), _mask(20, list(range(8))))  # 8/10
    r = s.result()
    assert r["miou"] == pytest.approx(65.0) and r["oiou"] == pytest.approx(75.0)


def test_probabilities_are_thresholded_inclusively() -> None:
    s = MaskScorer(threshold=0.35)
    prob = np.array([[0.35, 0.34, 0.9, 0.0]])
    assert s.update(prob, np.array([[True, True, False, False]])) == pytest.approx(1 / 3)


def test_bad_input_and_no_samples() -> None:
    s = MaskScorer()
    with pytest.raises(TypeError, match="bool"):
        s.update(np.zeros((2, 2), bool), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        s.update(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    r = s.result()
    assert r["n"] == 0 and r["miou"] is None and r["prec@0.9"] is None
    assert r["protocol"] == "sera"
    assert THRESHOLD_DEFAULT == 0.35
