"""The full metric set of one class of one case, from one shared crop and one shared distance computation."""

import math

import numpy as np

from keras_cdseg.metrics._checks import check_mask_pair, check_spacing
from keras_cdseg.metrics.overlap import overlap_metrics_from_counts
from keras_cdseg.metrics.scores import compute_scores
from keras_cdseg.metrics.surface_distance import compute_distance_metrics, union_bounding_box

# Keys of `compute_segmentation_metrics` that hold metric values (as opposed to counts, scores, flags).
METRIC_KEYS = (
    "dice", "jaccard", "iou", "vo_percent", "voe_percent", "rvd_percent", "abs_rvd_percent", "precision",
    "recall", "assd_mm", "rmsd_mm", "mssd_mm", "hd95_mm", "asd_gt_to_pred_mm", "asd_pred_to_gt_mm",
    "volume_gt_ml", "volume_pred_ml",
)

FLAGS = {
    "both_empty": "reference and prediction are empty: overlap perfect, distances 0",
    "empty_gt": "reference empty, prediction not: distances and RVD inf, recall NaN, scores 0",
    "empty_pred": "prediction empty, reference not: distances inf, precision NaN, scores 0",
    "gt_fills_array": "reference fills the whole array: its outer layer is used as its surface",
    "pred_fills_array": "prediction fills the whole array: its outer layer is used as its surface",
}


def compute_segmentation_metrics(mask_gt, mask_pred, spacing_mm, scoring="chaos", method="auto"):
    """Overlap, surface-distance and volume metrics of one class, their 0-100 scores, and flags.

    Args:
        mask_gt: bool or 0/1 array (2D or 3D). The reference.
        mask_pred: bool or 0/1 array of the same shape. The prediction.
        spacing_mm: sequence of positive floats, one per axis (mm).
        scoring: "chaos" or "sliver07" (see `keras_cdseg.metrics.scores`).
        method: distance algorithm, "auto", "edt" or "kdtree" (identical values).

    Returns:
        A dict with the float metrics of `METRIC_KEYS` (units in the names: `_mm`, `_percent`, `_ml`),
        integer counts `num_voxels_gt`, `num_voxels_pred`, `num_border_gt`, `num_border_pred`, a `scores`
        dict (per metric, `overall`), and `flags`, a list of `FLAGS` keys. Empty masks follow the documented
        policy: both empty -> perfect overlap and zero distances (flag `both_empty`); one empty -> infinite
        distances, NaN for the undefined ratio, scores 0 (flag `empty_gt` or `empty_pred`). Non-finite values
        are kept as they are, never dropped.

    Raises:
        InputError: masks of different shapes or not binary, or bad spacing.
    """
    mask_gt, mask_pred = check_mask_pair(mask_gt, mask_pred)
    spacing_mm = check_spacing(spacing_mm, mask_gt.ndim)
    box = union_bounding_box(mask_gt, mask_pred, margin=1)
    flags = []
    if box is None:
        flags.append("both_empty")
        box = tuple(slice(0, 1) for _ in mask_gt.shape)
    crop_gt, crop_pred = mask_gt[box], mask_pred[box]
    num_gt = int(np.count_nonzero(crop_gt))
    num_pred = int(np.count_nonzero(crop_pred))
    num_intersection = int(np.count_nonzero(crop_gt & crop_pred))
    if num_gt == 0 and num_pred > 0:
        flags.append("empty_gt")
    if num_pred == 0 and num_gt > 0:
        flags.append("empty_pred")
    if num_gt == mask_gt.size:
        flags.append("gt_fills_array")
    if num_pred == mask_pred.size:
        flags.append("pred_fills_array")

    voxel_volume_ml = math.prod(spacing_mm) / 1000.0
    result = overlap_metrics_from_counts(num_gt, num_pred, num_intersection)
    # The crop contains both masks plus a one-voxel margin, so every distance is the full-volume one.
    distances = compute_distance_metrics(crop_gt, crop_pred, spacing_mm, method=method)
    result.update({k: v for k, v in distances.items() if not k.startswith("num_")})
    result["volume_gt_ml"] = num_gt * voxel_volume_ml
    result["volume_pred_ml"] = num_pred * voxel_volume_ml
    result.update(
        num_voxels_gt=num_gt,
        num_voxels_pred=num_pred,
        num_border_gt=distances["num_border_gt"],
        num_border_pred=distances["num_border_pred"],
    )
    result["scores"] = compute_scores(result, scoring=scoring)
    result["flags"] = flags
    return result
