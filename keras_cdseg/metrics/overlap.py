"""Volume-overlap metrics of two binary masks: Dice, Jaccard/IoU, VO, VOE, RVD, precision, recall.

All are ratios of three voxel counts, `|G|` (reference), `|P|` (prediction) and `|G ∩ P|`, so spacing does
not matter. Empty-mask policy (the same in every function, and flagged by `compute_segmentation_metrics`):

| case            | Dice, Jaccard | VO  | VOE | RVD %      | precision | recall |
|-----------------|---------------|-----|-----|------------|-----------|--------|
| both empty      | 1             | 100 | 0   | 0          | 1         | 1      |
| reference empty | 0             | 0   | 100 | +inf       | 0         | NaN    |
| prediction empty| 0             | 0   | 100 | -100       | NaN       | 0      |

NaN means "undefined" (0/0), inf "unbounded"; neither is dropped from reported means.

References: CHAOS challenge evaluation (Kavur et al. 2021) for Dice and RAVD; Heimann et al. 2009 (SLIVER07)
for VOE and RVD; Baydar et al. for VO = Jaccard x 100.
"""

import numpy as np

from keras_cdseg.metrics._checks import check_mask_pair


def count_overlap(mask_gt, mask_pred):
    """Returns `(num_gt, num_pred, num_intersection)` voxel counts of two same-shape masks."""
    mask_gt, mask_pred = check_mask_pair(mask_gt, mask_pred)
    return (
        int(np.count_nonzero(mask_gt)),
        int(np.count_nonzero(mask_pred)),
        int(np.count_nonzero(mask_gt & mask_pred)),
    )


def compute_dice(mask_gt, mask_pred):
    """Dice `2|G ∩ P| / (|G| + |P|)`, in [0, 1]. Both empty -> 1.0."""
    return overlap_metrics_from_counts(*count_overlap(mask_gt, mask_pred))["dice"]


def compute_jaccard(mask_gt, mask_pred):
    """Jaccard index (IoU) `|G ∩ P| / |G ∪ P|`, in [0, 1]. Both empty -> 1.0."""
    return overlap_metrics_from_counts(*count_overlap(mask_gt, mask_pred))["jaccard"]


def compute_volumetric_overlap(mask_gt, mask_pred):
    """VO = 100 x Jaccard (%), the paper's "VO". VOE (SLIVER07) is `100 - VO`. Both empty -> 100.0."""
    return overlap_metrics_from_counts(*count_overlap(mask_gt, mask_pred))["vo_percent"]


def compute_relative_volume_difference(mask_gt, mask_pred):
    """Signed RVD = 100 x (|P| - |G|) / |G| (%); positive means over-segmentation (SLIVER07 sign).

    The CHAOS "RAVD" is its absolute value. Both empty -> 0.0; reference empty -> +inf.
    """
    return overlap_metrics_from_counts(*count_overlap(mask_gt, mask_pred))["rvd_percent"]


def compute_precision(mask_gt, mask_pred):
    """Precision `|G ∩ P| / |P|`. Both empty -> 1.0; prediction empty only -> NaN."""
    return overlap_metrics_from_counts(*count_overlap(mask_gt, mask_pred))["precision"]


def compute_recall(mask_gt, mask_pred):
    """Recall (sensitivity) `|G ∩ P| / |G|`. Both empty -> 1.0; reference empty only -> NaN."""
    return overlap_metrics_from_counts(*count_overlap(mask_gt, mask_pred))["recall"]


def compute_overlap_metrics(mask_gt, mask_pred):
    """Every overlap metric of two masks at once; see `overlap_metrics_from_counts`."""
    return overlap_metrics_from_counts(*count_overlap(mask_gt, mask_pred))


def overlap_metrics_from_counts(num_gt, num_pred, num_intersection):
    """Every overlap metric from the three voxel counts, with the module's empty-mask policy.

    Returns:
        A dict of floats: `dice`, `jaccard`, `iou` (= jaccard), `vo_percent`, `voe_percent`, `rvd_percent`
        (signed), `abs_rvd_percent`, `precision`, `recall`.
    """
    if not 0 <= num_intersection <= min(num_gt, num_pred):
        raise ValueError(f"inconsistent counts: num_gt={num_gt}, num_pred={num_pred}, "
                         f"num_intersection={num_intersection}")
    num_union = num_gt + num_pred - num_intersection
    if num_union == 0:
        dice = jaccard = precision = recall = 1.0
        rvd_percent = 0.0
    else:
        dice = 2.0 * num_intersection / (num_gt + num_pred)
        jaccard = num_intersection / num_union
        precision = num_intersection / num_pred if num_pred else np.nan
        recall = num_intersection / num_gt if num_gt else np.nan
        rvd_percent = 100.0 * (num_pred - num_gt) / num_gt if num_gt else np.inf
    vo_percent = 100.0 * jaccard
    return {
        "dice": float(dice),
        "jaccard": float(jaccard),
        "iou": float(jaccard),
        "vo_percent": float(vo_percent),
        "voe_percent": float(100.0 - vo_percent),
        "rvd_percent": float(rvd_percent),
        "abs_rvd_percent": float(abs(rvd_percent)),
        "precision": float(precision),
        "recall": float(recall),
    }
