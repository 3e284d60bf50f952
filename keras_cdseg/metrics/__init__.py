"""Segmentation metrics in pure numpy/scipy: overlap, surface distances (mm), 0-100 scores.

See docs/metrics.md for every formula, the border convention and the empty-mask policy.
"""

from keras_cdseg.metrics.overlap import (
    compute_dice,
    compute_jaccard,
    compute_overlap_metrics,
    compute_precision,
    compute_recall,
    compute_relative_volume_difference,
    compute_volumetric_overlap,
    count_overlap,
    overlap_metrics_from_counts,
)
from keras_cdseg.metrics.scores import SCHEMES, compute_scores, get_scheme
from keras_cdseg.metrics.segmentation_metrics import FLAGS, METRIC_KEYS, compute_segmentation_metrics
from keras_cdseg.metrics.surface_distance import (
    compute_assd,
    compute_average_surface_distance,
    compute_border,
    compute_distance_metrics,
    compute_mssd,
    compute_rmsd,
    compute_robust_hausdorff,
    compute_surface_distances,
)

__all__ = [
    "FLAGS",
    "METRIC_KEYS",
    "SCHEMES",
    "compute_assd",
    "compute_average_surface_distance",
    "compute_border",
    "compute_dice",
    "compute_distance_metrics",
    "compute_jaccard",
    "compute_mssd",
    "compute_overlap_metrics",
    "compute_precision",
    "compute_recall",
    "compute_relative_volume_difference",
    "compute_rmsd",
    "compute_robust_hausdorff",
    "compute_scores",
    "compute_segmentation_metrics",
    "compute_surface_distances",
    "compute_volumetric_overlap",
    "count_overlap",
    "get_scheme",
    "overlap_metrics_from_counts",
]
