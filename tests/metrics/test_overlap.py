"""Overlap metrics: hand-counted voxels and the empty-mask policy table."""

import numpy as np
import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.metrics import (
    compute_dice,
    compute_jaccard,
    compute_overlap_metrics,
    compute_precision,
    compute_recall,
    compute_relative_volume_difference,
    compute_volumetric_overlap,
    overlap_metrics_from_counts,
)


def test_hand_counted_values():
    mask_gt = np.zeros((4, 5, 3), bool)
    mask_pred = np.zeros((4, 5, 3), bool)
    mask_gt[0:2, 0:4, 0] = True  # 8 voxels
    mask_pred[1:3, 1:4, 0] = True  # 6 voxels, 3 of them in mask_gt
    assert compute_dice(mask_gt, mask_pred) == pytest.approx(2 * 3 / 14)
    assert compute_jaccard(mask_gt, mask_pred) == pytest.approx(3 / 11)
    assert compute_volumetric_overlap(mask_gt, mask_pred) == pytest.approx(300 / 11)
    assert compute_relative_volume_difference(mask_gt, mask_pred) == pytest.approx(-25.0)
    assert compute_precision(mask_gt, mask_pred) == pytest.approx(0.5)
    assert compute_recall(mask_gt, mask_pred) == pytest.approx(3 / 8)
    metrics = compute_overlap_metrics(mask_gt, mask_pred)
    assert metrics["voe_percent"] == pytest.approx(100 - 300 / 11)
    assert metrics["abs_rvd_percent"] == pytest.approx(25.0)
    assert metrics["iou"] == metrics["jaccard"]


def test_rvd_sign_is_positive_for_over_segmentation():
    assert overlap_metrics_from_counts(100, 120, 100)["rvd_percent"] == pytest.approx(20.0)
    assert overlap_metrics_from_counts(100, 80, 80)["rvd_percent"] == pytest.approx(-20.0)


def test_dice_and_jaccard_are_related():
    rng = np.random.default_rng(0)
    mask_gt = rng.random((9, 9, 9)) > 0.5
    mask_pred = rng.random((9, 9, 9)) > 0.4
    dice = compute_dice(mask_gt, mask_pred)
    jaccard = compute_jaccard(mask_gt, mask_pred)
    assert dice == pytest.approx(2 * jaccard / (1 + jaccard))
    assert compute_dice(mask_gt, mask_pred) == pytest.approx(compute_dice(mask_pred, mask_gt))


def test_both_empty_is_a_perfect_match():
    empty = np.zeros((3, 3), bool)
    assert compute_overlap_metrics(empty, empty) == {
        "dice": 1.0, "jaccard": 1.0, "iou": 1.0, "vo_percent": 100.0, "voe_percent": 0.0,
        "rvd_percent": 0.0, "abs_rvd_percent": 0.0, "precision": 1.0, "recall": 1.0,
    }


def test_empty_reference():
    metrics = overlap_metrics_from_counts(0, 5, 0)
    assert metrics["dice"] == metrics["vo_percent"] == metrics["precision"] == 0.0
    assert metrics["voe_percent"] == 100.0
    assert metrics["rvd_percent"] == np.inf and metrics["abs_rvd_percent"] == np.inf
    assert np.isnan(metrics["recall"])


def test_empty_prediction():
    metrics = overlap_metrics_from_counts(5, 0, 0)
    assert metrics["dice"] == metrics["jaccard"] == metrics["recall"] == 0.0
    assert metrics["rvd_percent"] == -100.0 and metrics["abs_rvd_percent"] == 100.0
    assert np.isnan(metrics["precision"])


def test_inconsistent_counts_and_bad_masks_are_rejected():
    with pytest.raises(ValueError, match="inconsistent"):
        overlap_metrics_from_counts(3, 2, 4)
    with pytest.raises(InputError, match="mask_pred"):
        compute_dice(np.zeros((3, 3), bool), np.zeros((3, 4), bool))
    with pytest.raises(InputError, match="mask_gt"):
        compute_dice(np.full((3, 3), 0.5), np.zeros((3, 3), bool))
