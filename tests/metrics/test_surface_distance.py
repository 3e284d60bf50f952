"""Surface distances: hand-computable geometry, empty masks, symmetry, brute-force cross-checks."""

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from keras_cdseg.errors import InputError
from keras_cdseg.metrics import (
    compute_assd,
    compute_average_surface_distance,
    compute_border,
    compute_distance_metrics,
    compute_mssd,
    compute_rmsd,
    compute_robust_hausdorff,
    compute_surface_distances,
)

METHODS = ("auto", "edt", "kdtree")


def _brute_force_border(mask):
    """Independent border definition: a mask voxel with a face neighbour inside the array that is background."""
    border = np.zeros_like(mask)
    for index in np.argwhere(mask):
        for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
            neighbour = index.copy()
            neighbour[axis] += step
            if 0 <= neighbour[axis] < mask.shape[axis] and not mask[tuple(neighbour)]:
                border[tuple(index)] = True
                break
    return border


def _brute_force_metrics(mask_gt, mask_pred, spacing_mm):
    """All-pairs distances between border voxel centres in mm (both masks non-empty, not filling the array)."""
    points_gt = np.argwhere(_brute_force_border(mask_gt)) * np.asarray(spacing_mm)
    points_pred = np.argwhere(_brute_force_border(mask_pred)) * np.asarray(spacing_mm)
    pairwise = cdist(points_gt, points_pred)
    gt_to_pred, pred_to_gt = pairwise.min(axis=1), pairwise.min(axis=0)
    pooled = np.concatenate([gt_to_pred, pred_to_gt])
    return {
        "assd_mm": pooled.mean(),
        "rmsd_mm": np.sqrt(np.mean(pooled**2)),
        "mssd_mm": pooled.max(),
        "hd95_mm": max(np.percentile(gt_to_pred, 95), np.percentile(pred_to_gt, 95)),
        "asd_gt_to_pred_mm": gt_to_pred.mean(),
        "asd_pred_to_gt_mm": pred_to_gt.mean(),
        "num_border_gt": len(points_gt),
        "num_border_pred": len(points_pred),
    }


def _random_blobby_mask(rng, shape, fill):
    # Smoothed noise gives blobs with holes and several components, harder than plain spheres.
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.0)
    return noise > np.quantile(noise, 1 - fill)


@pytest.mark.parametrize("method", METHODS)
def test_on_2_voxels_2mm_away_3d(method):
    mask_gt = np.zeros((5, 5, 5), bool)
    mask_pred = np.zeros((5, 5, 5), bool)
    mask_gt[1, 2, 2] = True
    mask_pred[3, 2, 2] = True
    distances = compute_surface_distances(mask_gt, mask_pred, (1.0, 1.0, 1.0), method=method)
    np.testing.assert_array_equal(distances["distances_gt_to_pred_mm"], [2.0])
    np.testing.assert_array_equal(distances["distances_pred_to_gt_mm"], [2.0])
    for fn in (compute_assd, compute_rmsd, compute_mssd, compute_robust_hausdorff):
        assert fn(distances) == pytest.approx(2.0)


@pytest.mark.parametrize("method", METHODS)
def test_on_2_pixels_2mm_away_2d_anisotropic(method):
    # One voxel apart along an axis with 2 mm voxels, 1 mm on the other axis.
    mask_gt = np.zeros((4, 4), bool)
    mask_pred = np.zeros((4, 4), bool)
    mask_gt[1, 1] = True
    mask_pred[2, 1] = True
    metrics = compute_distance_metrics(mask_gt, mask_pred, (2.0, 1.0), method=method)
    assert metrics["assd_mm"] == pytest.approx(2.0)
    assert metrics["mssd_mm"] == pytest.approx(2.0)
    diagonal = compute_distance_metrics(mask_gt, np.roll(mask_pred, 1, axis=1), (2.0, 1.0), method=method)
    assert diagonal["mssd_mm"] == pytest.approx(np.sqrt(5.0))


@pytest.mark.parametrize("method", METHODS)
def test_slabs_spanning_the_array_have_borders_only_on_their_free_faces(method):
    # With border_value=1 the array edge is not a surface: slab x in [2, 5] has border planes x=2 and x=5,
    # slab x in [4, 7] has x=4 and x=7. Distances: 2->4: 2, 5->4: 1, 4->5: 1, 7->5: 2 voxels along x.
    spacing_mm = (1.5, 0.8, 1.1)
    mask_gt = np.zeros((10, 6, 5), bool)
    mask_pred = np.zeros((10, 6, 5), bool)
    mask_gt[2:6] = True
    mask_pred[4:8] = True
    metrics = compute_distance_metrics(mask_gt, mask_pred, spacing_mm, method=method)
    assert metrics["num_border_gt"] == metrics["num_border_pred"] == 2 * 6 * 5
    assert metrics["assd_mm"] == pytest.approx(1.5 * 1.5)
    assert metrics["rmsd_mm"] == pytest.approx(1.5 * np.sqrt(2.5))
    assert metrics["mssd_mm"] == pytest.approx(2 * 1.5)
    assert metrics["hd95_mm"] == pytest.approx(2 * 1.5)
    assert metrics["asd_gt_to_pred_mm"] == pytest.approx(1.5 * 1.5)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_shifted_cubes(shift):
    # The farthest border voxels are the centres of the two faces normal to the shift: exactly `shift`
    # voxels along x from the other cube's surface; side-face voxels in the overlap coincide (distance 0).
    spacing_mm = (1.3, 1.0, 0.7)
    mask_gt = np.zeros((24, 16, 16), bool)
    mask_gt[4:16, 2:14, 2:14] = True
    mask_pred = np.roll(mask_gt, shift, axis=0)
    metrics = compute_distance_metrics(mask_gt, mask_pred, spacing_mm)
    assert metrics["mssd_mm"] == pytest.approx(shift * 1.3)
    assert 0 < metrics["assd_mm"] < shift * 1.3
    assert metrics["asd_gt_to_pred_mm"] == pytest.approx(metrics["asd_pred_to_gt_mm"])
    for key, value in _brute_force_metrics(mask_gt, mask_pred, spacing_mm).items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key


def _sphere(shape, center_mm, radius_mm, spacing_mm):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing_mm)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, center_mm)) <= radius_mm**2


def test_concentric_spheres_with_anisotropic_spacing():
    spacing_mm = (0.85, 1.2, 0.9)
    shape = (40, 30, 38)
    center_mm = (17.0, 17.5, 16.9)
    mask_gt = _sphere(shape, center_mm, 12.0, spacing_mm)
    mask_pred = _sphere(shape, center_mm, 9.0, spacing_mm)
    metrics = compute_distance_metrics(mask_gt, mask_pred, spacing_mm)
    # Voxelized surfaces sit within about one voxel of the true spheres 3 mm apart.
    assert metrics["assd_mm"] == pytest.approx(3.0, abs=0.6)
    assert 3.0 <= metrics["mssd_mm"] <= 3.0 + 1.3
    assert metrics["assd_mm"] <= metrics["rmsd_mm"] <= metrics["hd95_mm"] <= metrics["mssd_mm"]
    expected = _brute_force_metrics(mask_gt, mask_pred, spacing_mm)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(17, 13), (11, 9, 10)])
@pytest.mark.parametrize("seed", range(4))
def test_every_distance_metric_matches_brute_force_on_random_masks(method, shape, seed):
    rng = np.random.default_rng(seed)
    spacing_mm = tuple(rng.uniform(0.5, 2.5, size=len(shape)))
    mask_gt = _random_blobby_mask(rng, shape, fill=0.3)
    mask_pred = _random_blobby_mask(rng, shape, fill=0.25)
    metrics = compute_distance_metrics(mask_gt, mask_pred, spacing_mm, method=method)
    expected = _brute_force_metrics(mask_gt, mask_pred, spacing_mm)
    assert set(metrics) == set(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_border_matches_brute_force_and_ignores_the_array_edge():
    rng = np.random.default_rng(7)
    mask = _random_blobby_mask(rng, (12, 10, 9), fill=0.5)
    np.testing.assert_array_equal(compute_border(mask), _brute_force_border(mask))
    corner = np.zeros((6, 6, 6), bool)
    corner[:3, :3, :3] = True
    # Only the three inner faces of the corner cube are surface: 27 - 8 interior-or-edge-only voxels.
    assert compute_border(corner).sum() == 27 - 8


def test_cropping_gives_the_full_volume_values():
    rng = np.random.default_rng(3)
    small_gt = _random_blobby_mask(rng, (10, 12, 8), fill=0.4)
    small_pred = _random_blobby_mask(rng, (10, 12, 8), fill=0.4)
    mask_gt = np.zeros((40, 50, 30), bool)
    mask_pred = np.zeros((40, 50, 30), bool)
    mask_gt[20:30, 5:17, 11:19] = small_gt
    mask_pred[22:32, 8:20, 11:19] = small_pred
    spacing_mm = (0.7, 0.7, 2.5)
    metrics = compute_distance_metrics(mask_gt, mask_pred, spacing_mm)
    expected = _brute_force_metrics(mask_gt, mask_pred, spacing_mm)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("method", METHODS)
def test_symmetry(method):
    rng = np.random.default_rng(11)
    mask_a = _random_blobby_mask(rng, (14, 12, 10), fill=0.3)
    mask_b = _random_blobby_mask(rng, (14, 12, 10), fill=0.3)
    spacing_mm = (0.85, 1.2, 0.9)
    forward = compute_distance_metrics(mask_a, mask_b, spacing_mm, method=method)
    backward = compute_distance_metrics(mask_b, mask_a, spacing_mm, method=method)
    for key in ("assd_mm", "rmsd_mm", "mssd_mm", "hd95_mm"):
        assert forward[key] == pytest.approx(backward[key], abs=1e-12)
    assert forward["asd_gt_to_pred_mm"] == pytest.approx(backward["asd_pred_to_gt_mm"], abs=1e-12)


def test_identical_masks_have_zero_distances():
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 1:7, 3:5] = True
    metrics = compute_distance_metrics(mask, mask.copy(), (1.0, 2.0, 3.0))
    assert metrics["assd_mm"] == metrics["mssd_mm"] == metrics["hd95_mm"] == 0.0


def test_both_empty_gives_zero_distances():
    empty = np.zeros((6, 6, 6), bool)
    distances = compute_surface_distances(empty, empty, (1.0, 1.0, 1.0))
    assert distances["distances_gt_to_pred_mm"].size == distances["distances_pred_to_gt_mm"].size == 0
    assert compute_average_surface_distance(distances) == (0.0, 0.0)
    metrics = compute_distance_metrics(empty, empty, (1.0, 1.0, 1.0))
    assert metrics["assd_mm"] == metrics["rmsd_mm"] == metrics["mssd_mm"] == metrics["hd95_mm"] == 0.0


@pytest.mark.parametrize("empty_side", ["gt", "pred"])
def test_one_empty_gives_infinite_distances(empty_side):
    mask = np.zeros((6, 6, 6), bool)
    mask[1:4, 1:4, 1:4] = True
    empty = np.zeros_like(mask)
    mask_gt, mask_pred = (empty, mask) if empty_side == "gt" else (mask, empty)
    distances = compute_surface_distances(mask_gt, mask_pred, (1.0, 1.0, 1.0))
    non_empty_key = "distances_pred_to_gt_mm" if empty_side == "gt" else "distances_gt_to_pred_mm"
    assert distances[non_empty_key].size == 26 and np.all(np.isinf(distances[non_empty_key]))
    metrics = compute_distance_metrics(mask_gt, mask_pred, (1.0, 1.0, 1.0))
    for key in ("assd_mm", "rmsd_mm", "mssd_mm", "hd95_mm", "asd_gt_to_pred_mm", "asd_pred_to_gt_mm"):
        assert metrics[key] == np.inf, key


def test_mask_filling_the_array_uses_its_outer_layer():
    full = np.ones((5, 5), bool)
    inner = np.zeros((5, 5), bool)
    inner[2, 2] = True
    assert compute_border(full).sum() == 16
    assert compute_distance_metrics(full, inner, (1.0, 1.0))["mssd_mm"] == pytest.approx(np.sqrt(8.0))


def test_accepts_0_1_integer_masks():
    mask_gt = np.zeros((5, 5), np.uint8)
    mask_pred = np.zeros((5, 5), np.float32)
    mask_gt[1, 1] = 1
    mask_pred[3, 1] = 1
    assert compute_distance_metrics(mask_gt, mask_pred, (1.0, 1.0))["assd_mm"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "mask_pred, spacing_mm, message",
    [
        (np.zeros((4, 5), bool), (1.0, 1.0), "differs from mask_gt shape"),
        (np.full((4, 4), 2, np.uint8), (1.0, 1.0), "other than 0 and 1"),
        (np.zeros((4, 4), bool), (1.0,), "expected 2 values"),
        (np.zeros((4, 4), bool), (1.0, 0.0), "positive finite"),
        (np.zeros((4, 4), bool), (1.0, -1.0), "positive finite"),
        (np.zeros((4, 4), bool), (1.0, float("nan")), "positive finite"),
        (np.zeros((4, 4), bool), 1.0, "sequence"),
    ],
)
def test_bad_inputs_raise_clear_errors(mask_pred, spacing_mm, message):
    with pytest.raises(InputError, match=message):
        compute_surface_distances(np.zeros((4, 4), bool), mask_pred, spacing_mm)


def test_unknown_method_and_percent_are_rejected():
    mask = np.ones((3, 3), bool)
    with pytest.raises(ValueError, match="method"):
        compute_surface_distances(mask, mask, (1.0, 1.0), method="fast")
    with pytest.raises(ValueError, match="percent"):
        compute_robust_hausdorff(compute_surface_distances(mask, mask, (1.0, 1.0)), percent=120)
