"""Speed of the full metric set on a synthetic 512x512x100 liver pair, against straightforward references.

Compares `keras_cdseg.metrics.compute_segmentation_metrics` (cropped, one distance computation shared by all
distance metrics) with
- a full-volume reference: border + one uncropped EDT per direction (the textbook implementation),
- medpy's `assd` + `hd` when medpy is importable (not a dependency; `pip install medpy` to include it),
- DeepMind's surface-distance when importable (its surfel-weighted definitions differ, so it is timed only).
Prints one JSON object: seconds, speed-up ratios, and the largest absolute difference of the values where
definitions coincide (the liver pair does not touch the array edge, so medpy's border_value=0 erosion and
our CHAOS border_value=1 erosion give the same surfaces).

Usage: python benchmarks/bench_metrics.py [--shape 512 512 100] [--repeats 3] [--no-medpy]
"""

import argparse
import json
import platform
import time

import numpy as np
from scipy import ndimage

SPACING_MM = (0.7, 0.7, 2.5)


def liver_like_mask(shape, spacing_mm, shift_mm=(0.0, 0.0, 0.0), scale=1.0, island=False):
    """A lobed ellipsoid (right lobe + left lobe) with a wavy surface, roughly liver-sized, in mm."""
    size_mm = np.asarray(shape) * np.asarray(spacing_mm)
    center = size_mm * np.array([0.36, 0.45, 0.5]) + np.asarray(shift_mm)
    axes_mm = np.array([95.0, 70.0, 60.0]) * scale
    i, j, k = (np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing_mm))
    i, j, k = i[:, None, None], j[None, :, None], k[None, None, :]
    angle = np.arctan2(j - center[1], i - center[0])
    wobble = 1.0 + 0.06 * np.sin(3.0 * angle + k / 20.0)
    mask = ((i - center[0]) / axes_mm[0]) ** 2 + ((j - center[1]) / axes_mm[1]) ** 2 + (
        (k - center[2]) / axes_mm[2]
    ) ** 2 < wobble**2
    lobe_center = center + np.array([-60.0, 50.0, -10.0])
    lobe_axes_mm = np.array([45.0, 40.0, 35.0]) * scale
    mask |= sum(((g - c) / a) ** 2 for g, c, a in zip((i, j, k), lobe_center, lobe_axes_mm)) < 1.0
    if island:
        # A false-positive blob far from the organ: the MSSD case that makes cropping less effective.
        blob_center = center + np.array([110.0, 90.0, 0.0])
        mask |= sum(((g - c) / 8.0) ** 2 for g, c in zip((i, j, k), blob_center)) < 1.0
    return mask


def full_volume_reference(mask_gt, mask_pred, spacing_mm):
    """Textbook implementation: uncropped borders and one uncropped EDT per direction."""
    structure = ndimage.generate_binary_structure(3, 1)
    border_gt = mask_gt ^ ndimage.binary_erosion(mask_gt, structure=structure, border_value=1)
    border_pred = mask_pred ^ ndimage.binary_erosion(mask_pred, structure=structure, border_value=1)
    gt_to_pred = ndimage.distance_transform_edt(~border_pred, sampling=spacing_mm)[border_gt]
    pred_to_gt = ndimage.distance_transform_edt(~border_gt, sampling=spacing_mm)[border_pred]
    pooled = np.concatenate([gt_to_pred, pred_to_gt])
    return {
        "assd_mm": pooled.mean(),
        "rmsd_mm": np.sqrt(np.mean(pooled**2)),
        "mssd_mm": pooled.max(),
        "hd95_mm": max(np.percentile(gt_to_pred, 95), np.percentile(pred_to_gt, 95)),
    }


def best_time(fn, repeats):
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def max_abs_difference(ours, theirs, keys):
    return float(max(abs(float(ours[k]) - float(theirs[k])) for k in keys))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 100))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-medpy", action="store_true", help="skip medpy even if installed")
    args = parser.parse_args()

    from keras_cdseg.metrics import compute_segmentation_metrics

    shape = tuple(args.shape)
    mask_gt = liver_like_mask(shape, SPACING_MM)
    mask_pred = liver_like_mask(shape, SPACING_MM, shift_mm=(2.1, -1.4, 2.5), scale=1.03, island=True)
    report = {
        "shape": shape,
        "spacing_mm": SPACING_MM,
        "num_voxels_gt": int(mask_gt.sum()),
        "num_voxels_pred": int(mask_pred.sum()),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpu_count": _cpu_count()},
        "seconds": {},
    }
    seconds = report["seconds"]
    for method in ("auto", "kdtree", "edt"):
        seconds[f"ours_full_set_{method}"], ours = best_time(
            lambda: compute_segmentation_metrics(mask_gt, mask_pred, SPACING_MM, method=method), args.repeats
        )
        report.setdefault("ours", {k: ours[k] for k in ("dice", "assd_mm", "rmsd_mm", "mssd_mm", "hd95_mm")})
    ours = compute_segmentation_metrics(mask_gt, mask_pred, SPACING_MM)
    ours_seconds = seconds["ours_full_set_auto"]

    seconds["full_volume_reference"], reference = best_time(
        lambda: full_volume_reference(mask_gt, mask_pred, SPACING_MM), 1
    )
    keys = ("assd_mm", "rmsd_mm", "mssd_mm", "hd95_mm")
    report["max_abs_difference_mm"] = {"full_volume_reference": max_abs_difference(ours, reference, keys)}
    report["ratio"] = {"full_volume_reference_over_ours": seconds["full_volume_reference"] / ours_seconds}

    medpy = None if args.no_medpy else _try_import("medpy.metric.binary")
    if medpy is None:
        report["medpy"] = "not installed (optional: pip install medpy)"
    else:
        start = time.perf_counter()
        medpy_values = {
            "assd_mm": medpy.assd(mask_pred, mask_gt, voxelspacing=SPACING_MM),
            "mssd_mm": medpy.hd(mask_pred, mask_gt, voxelspacing=SPACING_MM),
        }
        seconds["medpy_assd_plus_hd"] = time.perf_counter() - start
        report["medpy"] = {"version": _version("medpy"), "values": medpy_values}
        report["max_abs_difference_mm"]["medpy"] = max_abs_difference(ours, medpy_values, tuple(medpy_values))
        report["ratio"]["medpy_assd_plus_hd_over_ours_full_set"] = seconds["medpy_assd_plus_hd"] / ours_seconds

    deepmind = _try_import("surface_distance")
    if deepmind is None:
        report["deepmind_surface_distance"] = "not installed (optional)"
    else:
        start = time.perf_counter()
        distances = deepmind.compute_surface_distances(mask_gt, mask_pred, SPACING_MM)
        average = deepmind.compute_average_surface_distance(distances)
        values = {
            "asd_gt_to_pred_mm": average[0],
            "asd_pred_to_gt_mm": average[1],
            "hd100_mm": deepmind.compute_robust_hausdorff(distances, 100),
            "hd95_mm": deepmind.compute_robust_hausdorff(distances, 95),
        }
        seconds["deepmind_asd_hd_hd95"] = time.perf_counter() - start
        # Surfel-area weighted, surface points between voxel centres: different definitions, shown for scale.
        report["deepmind_surface_distance"] = {"version": _version("surface-distance"), "values": values}
        report["ratio"]["deepmind_over_ours_full_set"] = seconds["deepmind_asd_hd_hd95"] / ours_seconds

    report["targets"] = {
        "full_set_at_most_1_s": ours_seconds <= 1.0,
        "medpy_ratio_at_least_50": report["ratio"].get("medpy_assd_plus_hd_over_ours_full_set", 0) >= 50,
        "medpy_24_7_s_over_ours_at_least_50": 24.7 / ours_seconds >= 50,
    }
    print(json.dumps(report, indent=2, default=float))


def _try_import(name):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _version(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu_count():
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
