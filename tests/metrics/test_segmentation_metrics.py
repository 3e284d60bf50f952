"""The full per-class metric set: consistency with the parts, volumes, flags and units."""

import math

import numpy as np
import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.metrics import (
    METRIC_KEYS,
    compute_distance_metrics,
    compute_overlap_metrics,
    compute_segmentation_metrics,
)


def _pair():
    mask_gt = np.zeros((30, 28, 12), bool)
    mask_gt[5:20, 6:22, 2:9] = True
    mask_pred = np.zeros_like(mask_gt)
    mask_pred[7:21, 5:20, 3:10] = True
    mask_pred[25:27, 1:3, 0:2] = True  # a distant false positive island
    return mask_gt, mask_pred


def test_full_set_agrees_with_the_separate_functions():
    mask_gt, mask_pred = _pair()
    spacing_mm = (0.7, 0.7, 2.5)
    result = compute_segmentation_metrics(mask_gt, mask_pred, spacing_mm)
    assert set(METRIC_KEYS) <= set(result)
    for key, value in compute_overlap_metrics(mask_gt, mask_pred).items():
        assert result[key] == pytest.approx(value)
    for key, value in compute_distance_metrics(mask_gt, mask_pred, spacing_mm, method="edt").items():
        assert result[key] == pytest.approx(value, abs=1e-12)
    assert result["volume_gt_ml"] == pytest.approx(mask_gt.sum() * 0.7 * 0.7 * 2.5 / 1000)
    assert result["num_voxels_pred"] == mask_pred.sum()
    assert result["flags"] == []
    assert 0 < result["scores"]["overall"] < 100


def test_sliver07_scoring_option():
    mask_gt, mask_pred = _pair()
    result = compute_segmentation_metrics(mask_gt, mask_pred, (1.0, 1.0, 1.0), scoring="sliver07")
    assert set(result["scores"]) == {"voe", "rvd", "assd", "rmsd", "mssd", "overall"}


@pytest.mark.parametrize(
    "gt_empty, pred_empty, flag",
    [(True, True, "both_empty"), (True, False, "empty_gt"), (False, True, "empty_pred")],
)
def test_empty_masks_are_flagged(gt_empty, pred_empty, flag):
    mask_gt, mask_pred = _pair()
    if gt_empty:
        mask_gt[:] = False
    if pred_empty:
        mask_pred[:] = False
    result = compute_segmentation_metrics(mask_gt, mask_pred, (1.0, 1.0, 1.0))
    assert result["flags"] == [flag]
    if flag == "both_empty":
        assert result["dice"] == 1.0 and result["assd_mm"] == 0.0 and result["scores"]["overall"] == 100.0
    else:
        assert math.isinf(result["assd_mm"]) and math.isinf(result["mssd_mm"])
        assert result["scores"]["overall"] == 0.0 and result["scores"]["chaos_overall"] == 0.0


def test_mask_filling_the_array_is_flagged():
    full = np.ones((4, 4, 4), bool)
    result = compute_segmentation_metrics(full, full, (1.0, 1.0, 1.0))
    assert result["flags"] == ["gt_fills_array", "pred_fills_array"]
    assert result["dice"] == 1.0 and result["mssd_mm"] == 0.0


def test_2d_masks():
    mask_gt = np.zeros((10, 10), bool)
    mask_gt[2:6, 2:6] = True
    result = compute_segmentation_metrics(mask_gt, np.roll(mask_gt, 2, axis=1), (0.5, 2.0))
    assert result["mssd_mm"] == pytest.approx(4.0)
    assert result["dice"] == pytest.approx(0.5)


def test_rejects_bad_spacing():
    mask_gt, mask_pred = _pair()
    with pytest.raises(InputError, match="spacing_mm"):
        compute_segmentation_metrics(mask_gt, mask_pred, (1.0, 1.0))
