"""The metric arithmetic at its edges: bool masks only, an empty union, a probability exactly
at the threshold, the nearest-neighbour ground truth of LAVT, ReLA's sums, and the exact keys
every protocol reports (what scripts reading `sera eval --json` rely on)."""

from __future__ import annotations

import numpy as np
import pytest

from sera_cli.analysis.metrics import (
    PROTOCOLS,
    MaskScorer,
    Sample,
    overlap,
    sample_iou,
    says_no_target,
)


def _masks(h: int, w: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize(("pred", "gt", "named"), [
    (np.zeros((2, 2)), np.zeros((2, 2), bool), "got float64, bool"),
    (np.zeros((2, 2), bool), np.zeros((2, 2), np.uint8), "got bool, uint8"),
])
def test_overlap_takes_bool_masks_only_and_names_both_dtypes(
        pred: np.ndarray, gt: np.ndarray, named: str) -> None:
    with pytest.raises(TypeError, match=f"masks must be bool .*{named}"):
        overlap(pred, gt)


def test_sample_iou_values() -> None:
    gt = _masks(4, 4, (0, 1, 0, 3))  # 3 pixels
    assert sample_iou(_masks(4, 4, (0, 1, 0, 2)), gt) == pytest.approx(2 / 3)
    assert sample_iou(_masks(4, 4, (3, 4, 3, 4)), gt) == 0.0
    assert sample_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_the_no_target_head_decides_at_one_half_inclusive() -> None:
    mask = np.ones((2, 2), bool)
    assert says_no_target(0.5, mask) and not says_no_target(0.4999, mask)
    assert says_no_target(None, ~mask) and not says_no_target(None, mask)


@pytest.mark.parametrize(("protocol", "counts_it"), [
    ("sera", True), ("cris", False), ("lavt", False), ("rela", False)])
def test_a_probability_exactly_at_the_threshold(protocol: str, counts_it: bool) -> None:
    """sera keeps p >= t; CRIS thresholds p > t, LAVT and ReLA take an argmax that the
    background wins on a tie. 0.5 is exact in float32, so no rounding decides."""
    scorer = MaskScorer(protocol, threshold=0.5)
    gt = np.ones((6, 6), bool)
    iou = scorer.update(np.full((6, 6), 0.5, np.float32), gt)
    assert iou == (1.0 if counts_it else 0.0)


def test_lavt_resizes_the_ground_truth_by_nearest_neighbour() -> None:
    """Each of the 480 x 480 pixels takes the value of its nearest source pixel: on a noisy
    mask any smoothing resample (bicubic, bilinear) changes thousands of them."""
    gt = np.random.default_rng(0).random((100, 100)) < 0.5
    scorer = MaskScorer("lavt", threshold=0.5)
    scorer.update(np.ones((100, 100), np.float32), gt)  # prediction: everything
    source = np.floor((np.arange(480) + 0.5) * 100 / 480).astype(int)
    expected = gt[source][:, source]
    assert scorer.result()["miou"] == pytest.approx(100 * expected.mean())


def test_rela_sums_leave_out_a_correct_no_target_and_count_a_missed_one() -> None:
    targeted_gt = _masks(10, 10, (0, 10, 0, 1))  # 10 pixels
    empty = np.zeros((10, 10), bool)
    scorer = MaskScorer("rela", threshold=0.5)
    scorer.update(_masks(10, 10, (0, 5, 0, 1)).astype(np.float32), targeted_gt, None, 0.1)
    # right "no target", though the mask head lit 20 pixels: adds nothing to the sums
    scorer.update(_masks(10, 10, (0, 2, 0, 10)).astype(np.float32), empty, None, 0.9)
    assert scorer.result()["ciou"] == pytest.approx(50.0)
    # missed "no target" with 20 lit pixels: its union counts, its IoU is 0
    scorer.update(_masks(10, 10, (0, 2, 0, 10)).astype(np.float32), empty, None, 0.1)
    result = scorer.result()
    assert result["ciou"] == pytest.approx(100 * 5 / 30)
    assert result["giou"] == pytest.approx(100 * (0.5 + 1 + 0) / 3)
    assert result["n_acc"] == pytest.approx(50.0) and result["t_acc"] == 100.0


@pytest.mark.parametrize(("protocol", "keys"), [
    ("sera", ["protocol", "n", "miou", "oiou", "prec@0.5", "prec@0.6", "prec@0.7", "prec@0.8",
              "prec@0.9"]),
    ("rela", ["protocol", "n", "giou", "ciou", "prec@0.7", "prec@0.8", "prec@0.9", "n_acc",
              "t_acc"]),
])
def test_every_protocol_reports_its_keys_in_order_with_and_without_samples(
        protocol: str, keys: list[str]) -> None:
    scorer = MaskScorer(protocol)
    empty = scorer.result()
    assert list(empty) == keys and empty["n"] == 0
    assert all(empty[k] is None for k in keys[2:])
    scorer.update(np.ones((3, 3), np.float32), np.ones((3, 3), bool))
    full = scorer.result()
    assert list(full) == keys and full["n"] == 1


def test_precision_at_an_iou_exactly_x_is_strict_for_cris_only() -> None:
    """CRIS counts IoU > X; an IoU from its I / (U + 1e-6) never lands exactly on X, so the
    rule is checked on the IoUs directly: 0.5 and 0.7 exactly."""
    ious = np.array([0.5, 0.7])
    cris = PROTOCOLS["cris"].precision(ious)
    assert cris["prec@0.5"] == 50.0 and cris["prec@0.7"] == 0.0
    for name in ("sera", "lavt"):
        inclusive = PROTOCOLS[name].precision(ious)
        assert inclusive["prec@0.5"] == 100.0 and inclusive["prec@0.7"] == 50.0


def test_a_sample_records_whether_the_ground_truth_is_empty_and_the_model_said_so() -> None:
    gt = _masks(4, 4, (0, 2, 0, 2))  # 4 pixels
    prob = _masks(4, 4, (0, 1, 0, 2)).astype(np.float32)  # 2 of them
    empty = np.zeros((4, 4), bool)
    for name in ("sera", "cris", "lavt"):
        protocol = PROTOCOLS[name]
        assert protocol.sample(prob, empty, 0.5, None).no_target is True
        assert protocol.sample(prob, empty, 0.5, 0.9).said_no_target is True
        assert protocol.sample(prob, gt, 0.5, None).no_target is False
        assert protocol.sample(prob, gt, 0.5, 0.1).said_no_target is False
    assert PROTOCOLS["sera"].sample(prob, gt, 0.5, None) == Sample(2, 4, 0.5, False, False)
    assert PROTOCOLS["sera"].sample(prob, gt, 0.5, 0.9) == Sample(0, 4, 0.0, False, True)
    assert PROTOCOLS["sera"].sample(prob, empty, 0.5, 0.9) == Sample(0, 0, 1.0, True, True)
    assert PROTOCOLS["rela"].sample(prob, gt, 0.5, None) == Sample(2, 4, 0.5, False, False)
    assert PROTOCOLS["rela"].sample(prob, gt, 0.5, 0.9) == Sample(0, 4, 0.0, False, True)
