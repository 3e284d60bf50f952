"""Quality signals on hand-built cases: a perfect prediction, inverted intensities, an empty prediction, a model
without a discriminator, and block statistics that match or do not match the training statistics."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_cdseg.data.nifti_io import Volume
from keras_cdseg.inference.quality.assess import assess_volume, dice_of
from keras_cdseg.inference.quality.estimate import QualityEstimator
from keras_cdseg.inference.quality.signals import (
    QualityProbe,
    components_of,
    confidence_tensors,
    compute_feature_shift,
    perturbation_agreement,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_fixtures import affine_for, blob_image, threshold_card, threshold_predictor  # noqa: E402
from quality_fixtures import hand_made_calibration  # noqa: E402

SHAPE = (40, 36, 12)
SPACING = (4.0, 4.0, 4.0)


@pytest.fixture(scope="module")
def blob():
    affine = affine_for("RAS", SPACING, SHAPE)
    image, inside = blob_image(SHAPE, affine)
    return Volume(image.astype(np.float32), affine), inside


def test_feature_shift_is_zero_for_matching_statistics_and_grows_with_the_shift():
    mean, variance = np.array([0.0, 2.0]), np.array([1.0, 4.0])
    assert compute_feature_shift(mean, variance + mean**2, mean, variance) == pytest.approx(0.0, abs=1e-6)
    # Mean shifted by one standard deviation in channel 0 only: (1² / 1 + 0) / 2 = 0.5.
    shifted = mean + np.array([1.0, 0.0])
    assert compute_feature_shift(shifted, variance + shifted**2, mean, variance) == pytest.approx(0.5, rel=1e-5)
    # Variance e times larger in both channels: mean(log(e)²) = 1.
    assert compute_feature_shift(mean, np.e * variance + mean**2, mean, variance) == pytest.approx(1.0, rel=1e-5)


def _confidence(probabilities, organ_value, band_pixels=2):
    out = {k: np.asarray(v) for k, v in confidence_tensors(probabilities, organ_value, band_pixels).items()}
    return float(out["entropy_sum"].sum()), float(out["max_probability_sum"].sum()), int(out["region_pixels"].sum())


def test_confidence_of_certain_uniform_and_empty_predictions():
    certain = np.zeros((1, 8, 8, 2), np.float32)
    certain[..., 0] = 1.0
    certain[0, 2:5, 2:5] = [0.0, 1.0]
    entropy, max_probability, count = _confidence(certain, organ_value=1, band_pixels=1)
    assert count == 25  # the 3x3 organ and its one-pixel band (a 5x5 square)
    assert entropy == pytest.approx(0.0, abs=1e-6) and max_probability == pytest.approx(count)
    uniform = np.full((1, 8, 8, 2), 0.5, np.float32)
    uniform[0, 0, 0] = [0.4, 0.6]  # one organ pixel (arg-max), everything else a tie resolved to background
    entropy, max_probability, count = _confidence(uniform, organ_value=1, band_pixels=0)
    assert count == 1 and entropy == pytest.approx(-(0.4 * np.log(0.4) + 0.6 * np.log(0.6)) / np.log(2), rel=1e-5)
    empty = np.stack([np.ones((1, 4, 4)), np.zeros((1, 4, 4))], -1).astype(np.float32)
    assert _confidence(empty, 1) == (0.0, 0.0, 0)
    organ = np.asarray(confidence_tensors(certain, 1)["organ"])
    assert organ.dtype == np.uint8 and organ.sum() == 9


def test_components_count_separate_islands():
    mask = np.zeros((6, 6, 6), bool)
    mask[0:2, 0:2, 0:2] = True  # 8 voxels
    mask[4:6, 4:6, 4:5] = True  # 4 voxels, not touching
    assert components_of(mask) == (2, pytest.approx(8 / 12))
    assert components_of(np.zeros((3, 3, 3), bool)) == (0, None)


def test_perfect_prediction(blob):
    volume, inside = blob
    card = threshold_card(target_spacing_mm=4.0)
    probe = QualityProbe(threshold_predictor(), organ_value=1)
    prediction, signals, unavailable, _ = assess_volume(probe, volume, card.data_config, (1,), perturbations=True)
    assert dice_of(inside, prediction.labels == 1) > 0.95
    assert signals["num_components"] == 1 and signals["largest_component_fraction"] == 1.0
    assert signals["mean_max_probability"] == pytest.approx(1.0) and signals["mean_entropy"] == pytest.approx(0.0)
    assert signals["agreement"] > 0.95  # gamma and a half-voxel shift barely change a clean threshold
    assert signals["organ_volume_ml"] == pytest.approx((prediction.labels == 1).sum() * 64 / 1000)
    # No discriminator and no Keras generator: both signals absent (None), never a made-up value.
    assert signals["critic_score"] is None and signals["feature_shift"] is None
    assert set(unavailable) == {"critic_score", "feature_shift"}


def test_inverted_intensity_input_segments_the_background(blob):
    volume, inside = blob
    card = threshold_card(target_spacing_mm=4.0)
    inverted = Volume(volume.data.max() + volume.data.min() - volume.data, volume.affine)
    probe = QualityProbe(threshold_predictor(), organ_value=1)
    prediction, signals, _, _ = assess_volume(probe, inverted, card.data_config, (1,), perturbations=True)
    assert dice_of(inside, prediction.labels == 1) < 0.3
    _, clean, _, _ = assess_volume(probe, volume, card.data_config, (1,))
    assert signals["organ_volume_ml"] > 3 * clean["organ_volume_ml"]
    estimator = QualityEstimator(hand_made_calibration(clean["organ_volume_ml"]))
    record = estimator.estimate(signals, {"critic_score": "none", "feature_shift": "none"})
    assert record["flagged"] and "implausible_volume" in record["flags"]
    assert estimator.estimate(clean, {"critic_score": "none", "feature_shift": "none"})["flags"] == [
        "critic_unavailable", "feature_shift_unavailable", "agreement_unavailable"]


def test_empty_prediction_has_no_critic_or_confidence_and_is_flagged(blob):
    volume, _ = blob
    card = threshold_card(target_spacing_mm=4.0)

    def critic_model():
        x = keras.Input((32, 32, 3))
        y = keras.Input((32, 32, 2))
        # 0 * x keeps the image input connected (Keras before 3.13 refuses an unused input).
        logit = keras.ops.mean(y[..., 1:2], axis=(1, 2)) * 10.0 + 0.0 * keras.ops.mean(x[..., :1], axis=(1, 2))
        return keras.Model([x, y], logit)

    probe = QualityProbe(threshold_predictor(threshold=2.0), organ_value=1, discriminator=critic_model())
    prediction, signals, unavailable, _ = assess_volume(probe, volume, card.data_config, (1,), perturbations=True)
    assert not (prediction.labels == 1).any()
    assert signals["critic_score"] is None and "critic_score" not in unavailable  # measurable, nothing to score
    assert signals["mean_entropy"] is None and signals["num_components"] == 0
    assert signals["organ_volume_ml"] == 0 and signals["agreement"] is None
    record = QualityEstimator(None).estimate(signals, unavailable)
    assert record["flagged"] and "empty_prediction" in record["flags"] and "no_calibration" in record["flags"]
    assert record["estimated_dice"] is None


def test_critic_score_averages_the_discriminator_over_slices_with_organ(blob):
    volume, _ = blob
    card = threshold_card(target_spacing_mm=4.0)
    x = keras.Input((32, 32, 3))
    y = keras.Input((32, 32, 2))
    organ_area = keras.ops.mean(y[..., 1:2], axis=(1, 2)) + 0.0 * keras.ops.mean(x[..., :1], axis=(1, 2))
    critic = keras.Model([x, y], organ_area * 10.0 - 1.0)  # logit from organ area
    probe = QualityProbe(threshold_predictor(), organ_value=1, discriminator=critic)
    prepared = []
    probe_inner = probe.__call__

    def spy(slices):
        out = probe_inner(slices)
        prepared.append(out)
        return out

    probe.reset()
    from keras_cdseg.inference.volume import predict_volume

    predict_volume(spy, volume, card.data_config, (1,))
    signals = probe.signals()
    probabilities = np.concatenate(prepared)
    area = probabilities[..., 1].mean(axis=(1, 2))
    expected = 1 / (1 + np.exp(-(10 * area[area > 0] - 1)))
    assert signals["critic_score"] == pytest.approx(float(expected.mean()), rel=1e-5)


def test_generator_probe_gives_the_generator_probabilities_and_a_feature_shift_that_sees_inversion(blob):
    from keras_cdseg.inference.volume import keras_predictor, predict_volume
    from keras_cdseg.models.segmenter import build_segmenter

    volume, _ = blob
    card = threshold_card(target_spacing_mm=4.0)
    keras.utils.set_random_seed(0)
    generator = build_segmenter((32, 32, 3), num_classes=2, base_filters=4, depth=2)
    probe = QualityProbe(None, organ_value=1, generator=generator)
    assert probe.block_names and "feature_shift" not in probe.unavailable
    prediction, _, _, _ = assess_volume(probe, volume, card.data_config, (1,))
    reference = predict_volume(keras_predictor(generator), volume, card.data_config, (1,))
    np.testing.assert_array_equal(prediction.labels, reference.labels)  # one pass, the same segmentation
    # Set every block's moving statistics to this scan's own: the shift of the scan becomes ~0.
    probe.reset()
    predict_volume(probe, volume, card.data_config, (1,))
    for name in probe.block_names:
        mean = probe._sums[name][0] / probe._num_slices
        variance = probe._sums[name][1] / probe._num_slices - mean**2
        probe._moving[name] = (mean, variance)
    _, matched, _, _ = assess_volume(probe, volume, card.data_config, (1,))
    inverted = Volume(volume.data.max() + volume.data.min() - volume.data, volume.affine)
    _, shifted, _, _ = assess_volume(probe, inverted, card.data_config, (1,))
    assert matched["feature_shift"] == pytest.approx(0.0, abs=1e-3)
    assert shifted["feature_shift"] > 0.1 and set(shifted["feature_shift_per_block"]) == set(probe.block_names)


def test_perturbation_agreement_is_low_for_an_unstable_model(blob):
    volume, _ = blob
    card = threshold_card(target_spacing_mm=4.0)
    rng = np.random.default_rng(0)

    def unstable(slices):  # a random half of the pixels is organ, differently at every call
        foreground = (rng.random(slices.shape[:3]) > 0.5).astype(np.float32)
        return np.stack([1 - foreground, foreground], axis=-1)

    labels = np.asarray(rng.random(SHAPE) > 0.5, np.uint8)
    assert perturbation_agreement(unstable, volume, card.data_config, labels, 1, ()) < 0.6


def test_block_statistics_subgrid_keeps_at_most_64_rows_and_estimates_the_full_moments():
    from keras_cdseg.inference.quality.signals import subsampled

    rng = np.random.default_rng(1)
    smooth = rng.normal(2.0, 3.0, (2, 256, 200, 4)).astype(np.float32)
    grid = keras.ops.convert_to_numpy(subsampled(keras.ops.convert_to_tensor(smooth)))
    assert grid.shape == (2, 64, 50, 4)  # stride 4 on both axes, from the larger one
    assert subsampled(smooth[:, :64, :64]).shape == (2, 64, 64, 4)  # small maps are used whole
    np.testing.assert_allclose(grid.mean(axis=(1, 2)), smooth.mean(axis=(1, 2)), atol=0.1)
    np.testing.assert_allclose(grid.var(axis=(1, 2)), smooth.var(axis=(1, 2)), rtol=0.05)
