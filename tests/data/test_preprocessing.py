"""prepare_volume and its inverses: orientation, intensity rule, resampling, pad/crop, round trips."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_cdseg.config import DataConfig
from keras_cdseg.data.nifti_io import Volume, load_image, load_label, save_array, save_like
from keras_cdseg.data.preprocessing import (
    VolumeGeometry,
    context_slices,
    context_stack,
    intensity_limits,
    prepare_volume,
    REFERENCE_LANDMARKS,
    landmark_map,
    rank_knots,
    rank_map,
    ranks_of,
    restore_labels,
    restore_labels_from_probability_slices,
    restore_probabilities,
    restore_probability_slices,
)
from keras_cdseg.errors import InputError

# The small real full-range HU CT kept in the tests (TotalSegmentator example, NOTICE beside it; liver = 5).
REAL_CT = Path(__file__).resolve().parents[1] / "data" / "real" / "ct_abdomen_3mm.nii.gz"
REAL_CT_ORGANS = REAL_CT.with_name("ct_abdomen_3mm_organs.nii.gz")

# Affines: RAS, LPS (x and y flipped), and a permuted one whose array axes are (S, R, P) with its own spacings.
RAS = np.diag([1.5, 1.5, 3.0, 1.0])
LPS = np.array([[-1.5, 0, 0, 40.0], [0, -1.5, 0, 30.0], [0, 0, 3.0, -10.0], [0, 0, 0, 1]])
PERMUTED = np.array([[0, 1.5, 0, 5.0], [0, 0, -1.5, 7.0], [3.0, 0, 0, -2.0], [0, 0, 0, 1]])


def _ellipsoid(shape, affine, radii_mm=(12.0, 9.0, 7.0), value=1):
    """A smooth blob centred in world space, drawn on the voxel grid of `affine`."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    centre = np.array([(n - 1) / 2 for n in shape]) @ affine[:3, :3].T + affine[:3, 3]
    inside = (((world - centre) / np.array(radii_mm)) ** 2).sum(axis=-1) <= 1
    return (inside * value).astype(np.uint8)


def _image_for(label, seed=0):
    rng = np.random.default_rng(seed)
    return (label.astype(np.float32) * 100 + rng.normal(0, 10, label.shape)).astype(np.float32)


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _canonical_shape(shape, affine):
    from nibabel import orientations as nio

    ornt = nio.io_orientation(affine).astype(int)
    out = [0, 0, 0]
    for i, (axis, _) in enumerate(ornt):
        out[axis] = shape[i]
    return out


@pytest.mark.parametrize("affine", [RAS, LPS, PERMUTED], ids=["ras", "lps", "permuted"])
def test_identity_resampling_round_trip_is_exact(affine):
    shape = (7, 20, 24) if affine is PERMUTED else (20, 24, 7)
    label = _ellipsoid(shape, affine) + _ellipsoid(shape, affine, radii_mm=(4, 4, 4))  # labels 0, 1, 2
    image = _image_for(label)
    prepared = prepare_volume(Volume(image, affine), DataConfig(image_size=32), Volume(label, affine))

    num_slices = _canonical_shape(shape, affine)[2]
    assert prepared.image.shape == (num_slices, 32, 32) and prepared.image.dtype == np.float32
    assert prepared.label.shape == (num_slices, 32, 32) and prepared.label.dtype == np.uint8
    assert prepared.geometry.resampled_shape == tuple(_canonical_shape(shape, affine)[:2])
    restored = restore_labels(prepared.label, prepared.geometry)
    assert restored.shape == shape and restored.dtype == np.uint8
    np.testing.assert_array_equal(restored, label)
    # Identity resampling copies intensities: the window's field of view holds the clipped, rescaled input.
    low, high = prepared.geometry.intensity_range
    expected = (np.clip(image, low, high) - low) / (high - low)
    probabilities = np.stack([1 - prepared.image, prepared.image], axis=-1)
    np.testing.assert_allclose(restore_probabilities(probabilities, prepared.geometry)[..., 1], expected, atol=1e-6)


@pytest.mark.parametrize("affine", [LPS, PERMUTED], ids=["lps", "permuted"])
def test_prepared_axes_are_ras(affine):
    shape = (7, 20, 24) if affine is PERMUTED else (20, 24, 7)
    label = np.zeros(shape, np.uint8)
    voxel = (2, 3, 18) if affine is PERMUTED else (3, 18, 2)
    label[voxel] = 1
    prepared = prepare_volume(Volume(_image_for(label), affine), DataConfig(image_size=32), Volume(label, affine))
    k, h, w = np.argwhere(prepared.label == 1)[0]
    # The prepared pixel sits at the same world position as the original voxel.
    world_original = affine @ np.array([*voxel, 1.0])
    world_prepared = prepared.geometry.prepared_affine @ np.array([h, w, k, 1.0])
    np.testing.assert_allclose(world_prepared, world_original, atol=1e-6)
    # And the prepared grid runs along +x, +y, +z.
    directions = prepared.geometry.prepared_affine[:3, :3]
    assert np.all(np.diag(directions) > 0) and np.allclose(directions - np.diag(np.diag(directions)), 0)


@pytest.mark.parametrize(
    "affine, shape",
    [
        (np.diag([0.8, 1.1, 4.0, 1.0]), (80, 60, 6)),  # anisotropic, upsampled on restore
        (np.array([[-0.7, 0, 0, 0], [0, -0.9, 0, 0], [0, 0, 2.5, 0], [0, 0, 0, 1.0]]), (90, 70, 5)),  # LPS
        (np.array([[0, 2.1, 0, 0], [0, 0, -1.7, 0], [5.0, 0, 0, 0], [0, 0, 0, 1.0]]), (4, 34, 40)),  # permuted
    ],
    ids=["anisotropic", "lps", "permuted"],
)
def test_resampling_round_trip_keeps_grid_and_shape(affine, shape):
    # Nearest-neighbour errors are about a quarter of a prepared pixel along the boundary, so Dice > 0.97
    # needs organ-sized shapes (radii >= ~20 mm at 1.5 mm pixels); small blobs lose more.
    label = _ellipsoid(shape, affine, radii_mm=(25, 20, 30))
    config = DataConfig(image_size=64, target_spacing_mm=1.5)
    prepared = prepare_volume(Volume(_image_for(label), affine), config, Volume(label, affine))
    assert prepared.geometry.resampled_shape != tuple(_canonical_shape(shape, affine)[:2])
    restored = restore_labels(prepared.label, prepared.geometry)
    assert restored.shape == shape
    assert _dice(restored == 1, label == 1) > 0.97

    # Written back beside the input, the file has the input's exact grid.
    geometry = VolumeGeometry.from_dict(json.loads(json.dumps(prepared.geometry.to_dict())))
    assert geometry == prepared.geometry
    np.testing.assert_array_equal(restore_labels(prepared.label, geometry), restored)


def test_round_trip_through_nifti_files(tmp_path):
    affine = np.array([[-0.75, 0, 0, 100.0], [0, -0.75, 0, 80.0], [0, 0, 3.0, -50.0], [0, 0, 0, 1.0]])
    label = _ellipsoid((100, 90, 5), affine, radii_mm=(25, 22, 30))
    save_array((_image_for(label) * 10).astype(np.int16), affine, tmp_path / "img.nii.gz")
    save_array(label, affine, tmp_path / "lab.nii.gz")
    image_volume = load_image(tmp_path / "img.nii.gz")
    prepared = prepare_volume(image_volume, DataConfig(image_size=64), load_label(tmp_path / "lab.nii.gz"))
    save_like(restore_labels(prepared.label, prepared.geometry), image_volume, tmp_path / "pred.nii.gz", np.uint8)

    written = load_label(tmp_path / "pred.nii.gz")
    assert written.shape == image_volume.shape
    np.testing.assert_array_equal(written.affine, image_volume.affine)
    assert _dice(written.data == 1, label == 1) > 0.97


def test_volume_larger_than_image_size_is_centre_cropped():
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    label = np.zeros((40, 38, 3), np.uint8)
    label[4:36, 3:35] = 1  # window is 32 wide, starting at (40-32)//2 = 4 and (38-32)//2 = 3
    label[0, 0] = 2  # outside the window: lost
    label[20, 20] = 3  # inside: kept
    prepared = prepare_volume(Volume(_image_for(label), affine), DataConfig(image_size=32), Volume(label, affine))
    assert prepared.geometry.pad_offsets == (-4, -3)
    assert np.all(prepared.label[:, :, :] != 2)
    assert np.all(prepared.label[:, 16, 17] == 3)
    restored = restore_labels(prepared.label, prepared.geometry)
    expected = label.copy()
    expected[0, 0] = 0
    np.testing.assert_array_equal(restored, expected)


def test_volume_smaller_than_image_size_is_centre_padded():
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    image = np.random.default_rng(1).normal(size=(10, 13, 2)).astype(np.float32)
    prepared = prepare_volume(Volume(image, affine), DataConfig(image_size=32))
    assert prepared.label is None
    assert prepared.geometry.pad_offsets == (11, 9)
    window = np.zeros((2, 32, 32), bool)
    window[:, 11:21, 9:22] = True
    assert np.all(prepared.image[~window] == 0)
    assert prepared.image[window].min() == 0 and prepared.image[window].max() == 1


def test_intensity_rule_is_identical_for_ct_and_rescaled_mr_scales():
    rng = np.random.default_rng(3)
    ct = rng.normal(40, 300, (24, 24, 4)).clip(-1000, 2000).astype(np.float32)
    mr = 37.5 * ct + 1000
    config = DataConfig(image_size=32, target_spacing_mm=1.2)
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    prepared_ct = prepare_volume(Volume(ct, affine), config).image
    prepared_mr = prepare_volume(Volume(mr, affine), config).image
    np.testing.assert_allclose(prepared_mr, prepared_ct, atol=2e-6)
    assert 0 <= prepared_ct.min() and prepared_ct.max() <= 1 and prepared_ct.std() > 0.1
    # Without resampling the clip percentiles land exactly on 0 and 1.
    same_spacing = DataConfig(image_size=32, target_spacing_mm=0.9)
    for volume in (ct, mr):
        prepared = prepare_volume(Volume(volume, affine), same_spacing).image
        assert prepared.min() == 0 and prepared.max() == pytest.approx(1, abs=1e-6)
        assert np.mean(prepared[:, 4:28, 4:28] == 0) == pytest.approx(0.005, abs=0.003)


def test_intensity_limits_percentiles_and_fallbacks():
    values = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    low, high = intensity_limits(values, (0.5, 99.5))
    assert low == pytest.approx(np.percentile(values, 0.5)) and high == pytest.approx(np.percentile(values, 99.5))
    # Subsampled estimate stays close to the exact percentiles.
    big = np.random.default_rng(0).normal(size=(64, 64, 64)).astype(np.float32)
    sampled = intensity_limits(big, (1, 99), max_samples=20_000)
    np.testing.assert_allclose(sampled, np.percentile(big, (1, 99)), atol=0.1)
    # > 99.5 % background: both percentiles are 0, so the full range is used instead.
    sparse = np.zeros((20, 20, 20), np.float32)
    sparse[0, 0, :3] = 7
    assert intensity_limits(sparse, (0.5, 99.5)) == (0.0, 7.0)
    constant_volume = Volume(np.full((8, 8, 2), 5.0, np.float32), np.eye(4))
    constant = prepare_volume(constant_volume, DataConfig(image_size=8, target_spacing_mm=1.0))
    assert np.all(constant.image == 0)


def test_rank_map_counts_the_voxels_below_a_value_and_splits_spikes_at_their_start():
    # 40 % of the voxels at -125 (a window's lower edge), then 0..59 once each.
    values = np.concatenate([np.full(40, -125.0), np.arange(60.0)])
    knots = rank_knots(values, num_knots=101)
    assert len(knots) == 101 and knots[0] == knots[39] == -125 and knots[40] > -125 and knots[-1] == 59
    ranks = rank_map(np.array([-200.0, -125.0, -124.99, 0.0, 30.0, 59.0, 80.0]), knots)
    assert ranks[0] == 0 and ranks[1] == 0  # below the data, and the spike itself: nothing lies below
    # just above the spike, the spike lies below (to within the knots' linear percentiles)
    assert ranks[2] == pytest.approx(0.40, abs=0.015) and ranks[3] == pytest.approx(0.40, abs=0.015)
    assert ranks[4] == pytest.approx(0.70, abs=0.015)
    assert ranks[5] == 1 and ranks[6] == 1
    assert np.all(np.diff(rank_map(np.linspace(-130, 65, 500), knots)) >= 0)  # never decreasing
    assert not np.any(rank_map(np.full(5, 3.0), rank_knots(np.full((4, 4, 4), 3.0))))  # a constant volume: 0
    # The table `prepare_volume` uses stays within one table step of the exact map.
    real_ct = load_image(REAL_CT).data
    exact = rank_map(real_ct, rank_knots(real_ct))
    table = ranks_of(real_ct, rank_knots(real_ct))
    assert table.dtype == np.float32 and np.abs(table - exact).max() < 1e-4 and np.all(table <= exact + 1e-7)


def test_ranks_map_a_windowed_ct_and_its_full_range_original_alike_inside_the_window():
    """The covariate shift percentiles cannot remove: full-range HU against the same CT clipped to a window."""
    image = load_image(REAL_CT)
    full_range = np.asarray(image.data, dtype=np.float32)
    windowed = np.clip(full_range, -125, 275)
    inside = (full_range > -125) & (full_range < 275)
    liver = np.asarray(load_label(REAL_CT_ORGANS).data) == 5
    config = DataConfig(image_size=128, target_spacing_mm=3.0)
    by_rule = {}
    for rule in ("percentiles", "ranks", "landmarks"):
        rule_config = DataConfig(image_size=128, target_spacing_mm=3.0, intensity=rule)
        full = prepare_volume(Volume(full_range, image.affine), rule_config)
        window = prepare_volume(Volume(windowed, image.affine), rule_config)
        by_rule[rule] = (full, window)
    # With ranks, every voxel inside the window keeps its value to within the knots' spacing (1/1024) ...
    full, window = (restore_probabilities(np.stack([1 - p.image, p.image], -1), p.geometry)[..., 1]
                    for p in by_rule["ranks"])  # fmt: skip
    assert np.abs(full - window)[inside].max() < 2e-3
    assert full[liver].mean() == pytest.approx(window[liver].mean(), abs=1e-4)
    # Landmarks keep that, and put the liver where the percentile rule puts it in the windowed CT.
    full, window = (restore_probabilities(np.stack([1 - p.image, p.image], -1), p.geometry)[..., 1]
                    for p in by_rule["landmarks"])  # fmt: skip
    assert np.abs(full - window)[inside].max() < 1e-2
    windowed_by_percentiles = restore_probabilities(
        np.stack([1 - by_rule["percentiles"][1].image, by_rule["percentiles"][1].image], -1), by_rule["percentiles"][1].geometry
    )[..., 1]
    assert full[liver].mean() == pytest.approx(windowed_by_percentiles[liver].mean(), abs=0.05)
    # ... where the percentile rule moves the liver by 0.4 of the whole [0, 1] range.
    full, window = (restore_probabilities(np.stack([1 - p.image, p.image], -1), p.geometry)[..., 1]
                    for p in by_rule["percentiles"])  # fmt: skip
    assert full[liver].mean() - window[liver].mean() > 0.3
    assert config.intensity == "percentiles"  # the default is unchanged


def test_ranks_ignore_any_increasing_change_of_scale_and_keep_the_field_of_view_at_zero():
    rng = np.random.default_rng(5)
    ct = rng.normal(40, 300, (40, 40, 4)).astype(np.float32)
    config = DataConfig(image_size=48, target_spacing_mm=1.0, intensity="ranks")
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    prepared = prepare_volume(Volume(ct, affine), config)
    for changed in (3 * ct + 700, np.exp(ct / 400).astype(np.float32)):
        np.testing.assert_allclose(prepare_volume(Volume(changed, affine), config).image, prepared.image, atol=2e-3)
    assert prepared.image[:, :4].max() == 0 and prepared.image[:, 4:44, 4:44].mean() == pytest.approx(0.5, abs=0.01)
    geometry = prepared.geometry
    assert len(geometry.rank_knots) == 1025 and VolumeGeometry.from_dict(json.loads(json.dumps(geometry.to_dict()))) == geometry
    with pytest.raises(InputError, match="intensity must be one of percentiles, ranks, landmarks"):
        DataConfig(intensity="zscore")


def test_landmarks_map_ranks_through_the_reference_curve_and_stay_invariant():
    ranks = np.array([0.0, 0.15, 0.3, 0.875, 0.9, 0.99, 1.0])
    np.testing.assert_allclose(landmark_map(ranks, REFERENCE_LANDMARKS), [0, 0.005, 0.01, 0.43, 0.47, 0.97, 1.0], atol=1e-12)
    assert np.all(np.diff(landmark_map(np.linspace(0, 1, 1001), REFERENCE_LANDMARKS)) >= 0)
    rng = np.random.default_rng(5)
    ct = rng.normal(40, 300, (40, 40, 4)).astype(np.float32)
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    config = DataConfig(image_size=48, target_spacing_mm=1.0, intensity="landmarks")
    prepared = prepare_volume(Volume(ct, affine), config)
    ranks = prepare_volume(Volume(ct, affine), DataConfig(image_size=48, target_spacing_mm=1.0, intensity="ranks"))
    np.testing.assert_allclose(prepared.image, landmark_map(ranks.image, REFERENCE_LANDMARKS), atol=2e-4)
    np.testing.assert_allclose(prepare_volume(Volume(3 * ct + 700, affine), config).image, prepared.image, atol=1e-2)
    geometry = prepared.geometry
    assert geometry.rank_landmarks == REFERENCE_LANDMARKS
    assert VolumeGeometry.from_dict(json.loads(json.dumps(geometry.to_dict()))) == geometry


def test_restore_probabilities_keeps_sums_and_fills_background():
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    label = _ellipsoid((30, 30, 3), affine, radii_mm=(20, 16, 10))
    prepared = prepare_volume(Volume(_image_for(label), affine), DataConfig(image_size=16), Volume(label, affine))
    one_hot = np.eye(3, dtype=np.float32)[prepared.label]
    probabilities = restore_probabilities(one_hot, prepared.geometry)
    assert probabilities.shape == (30, 30, 3, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, atol=1e-5)
    assert np.all(probabilities[0, 0, :, 0] == 1)  # cropped away (resampled grid 40 > 16): background
    argmax = probabilities.argmax(axis=-1)
    assert _dice(argmax == 1, restore_labels(prepared.label, prepared.geometry) == 1) > 0.97


@pytest.mark.parametrize(
    "shape, spacing, image_size",
    [((90, 84, 4), (0.7, 0.8), 24), ((20, 18, 4), (3.1, 2.9), 24), ((30, 30, 4), (2.5, 2.5), 24), ((70, 9, 4), (0.9, 3.0), 20)],
    ids=["upsampled-cropped", "downsampled", "identity", "mixed-padded"],
)
def test_labels_from_probabilities_equal_the_arg_max_of_the_dense_restoration(shape, spacing, image_size):
    """Interpolating only the cells with mixed corner labels gives the dense restoration's arg-max, bit for bit."""
    affine = np.diag([*spacing, 3.0, 1.0])
    geometry = prepare_volume(Volume(np.zeros(shape, np.float32), affine),
                              DataConfig(image_size=image_size, target_spacing_mm=2.5)).geometry  # fmt: skip
    rng = np.random.default_rng(7)
    coarse = rng.normal(size=(shape[2], image_size // 4, image_size // 4, 4)) * 3  # blobs of 4 x 4 pixels
    logits = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2) + rng.normal(size=(shape[2], image_size, image_size, 4))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    probabilities = probabilities.astype(np.float16).astype(np.float32)
    probabilities[0, ::3] = probabilities[0, ::3, :, :1]  # exact ties between all classes on some rows
    dense = restore_probability_slices(probabilities, geometry, background_class=0).argmax(axis=-1)
    labels = restore_labels_from_probability_slices(probabilities, geometry)
    assert labels.dtype == np.uint8 and labels.shape == (shape[2], *shape[:2])
    np.testing.assert_array_equal(labels, dense)
    assert len(np.unique(labels)) == 4


def test_label_on_another_grid_is_rejected():
    image = Volume(np.ones((8, 8, 2), np.float32), np.eye(4))
    with pytest.raises(InputError, match="affine"):
        prepare_volume(image, DataConfig(image_size=8), Volume(np.zeros((8, 8, 2), np.uint8), np.diag([2, 1, 1, 1.0])))
    with pytest.raises(ValueError, match="geometry expects"):
        prepared = prepare_volume(image, DataConfig(image_size=8, target_spacing_mm=1.0))
        restore_labels(np.zeros((2, 4, 4), np.uint8), prepared.geometry)


def test_context_slices_replicate_edges():
    volume = np.broadcast_to(np.arange(5, dtype=np.float32)[:, None, None], (5, 3, 4))
    assert context_slices(volume, 0, 2).shape == (3, 4, 5)
    np.testing.assert_array_equal(context_slices(volume, 0, 2)[0, 0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(context_slices(volume, 4, 1)[2, 3], [3, 4, 4])
    np.testing.assert_array_equal(context_slices(volume, 2, 0)[1, 1], [2])
    stack = context_stack(volume, np.array([0, 4, 2]), 1)
    assert stack.shape == (3, 3, 4, 3)
    np.testing.assert_array_equal(stack[:, 0, 0], [[0, 0, 1], [3, 4, 4], [1, 2, 3]])


def test_organ_intensities_by_rule_script_shows_which_rules_a_window_leaves_alone(tiny_dataset, tmp_path):
    """scripts/organ_intensities_by_rule.py: per rule, where the organs sit, without a model."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "organ_intensities_by_rule.py"
    out = tmp_path / "organs.json"
    command = [sys.executable, str(script), str(tiny_dataset), "--real-ct", str(REAL_CT),
               "--real-ct-labels", str(REAL_CT_ORGANS), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"percentiles", "ranks", "landmarks"}
    assert set(result["summary"]["ranks"]) == {"CT", "MR"} and result["summary"]["ranks"]["CT"]["liver"]["n"] == 2
    real = {row["case_id"]: row["medians"] for row in result["cases"] if row["modality"] == "real CT"}
    stored, windowed = real["real CT, full-range"], real["real CT, windowed"]
    for rule in ("ranks", "landmarks"):
        assert stored[rule]["liver"] == pytest.approx(windowed[rule]["liver"], abs=0.01)
    assert stored["percentiles"]["liver"] - windowed["percentiles"]["liver"] > 0.3
    assert "| landmarks | real CT, windowed |" in done.stdout
