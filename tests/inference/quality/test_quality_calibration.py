"""The calibration model (rank normalization, penalized logistic fits, refits on available signals), the
degradations, and the benchmark's metrics on hand-computable inputs."""

import numpy as np
import pytest

from keras_cdseg.data.nifti_io import Volume
from keras_cdseg.experiments.failure_detection import aurc, auroc, flag_summary, risk_coverage
from keras_cdseg.inference.quality.calibration import (
    apply_quality_model,
    features,
    fit_logistic,
    fit_quality_model,
    rank_normalize,
    volume_reference,
)
from keras_cdseg.inference.quality.degradations import CALIBRATION, HELD_OUT, Degradation, degrade
from keras_cdseg.inference.quality.estimate import QualityEstimator


def test_rank_normalize_is_the_centred_mid_rank_and_missing_is_neutral():
    reference = [1.0, 2.0, 3.0, 4.0]
    z = rank_normalize([0.0, 1.0, 2.5, 9.0, None], reference)
    np.testing.assert_allclose(z, [-0.5, 0.125 - 0.5, 0.5 - 0.5, 0.5, 0.0])


def test_logistic_fit_finds_the_direction_and_the_penalty_shrinks_it():
    z = np.linspace(-0.5, 0.5, 41)[:, None]
    y = (z[:, 0] > 0).astype(float)
    _, weak = fit_logistic(z, y, l2=100.0)
    _, strong = fit_logistic(z, y, l2=0.1)
    assert 0 < weak[0] < strong[0]
    intercept, _ = fit_logistic(np.zeros((10, 1)), np.full(10, 0.3), l2=1.0)
    assert 1 / (1 + np.exp(-intercept)) == pytest.approx(0.3, abs=1e-6)  # no signal: the base rate


def _samples(num=60, seed=0):
    """Entropy predicts failure; the critic is noise; volumes are typical except for failures."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(num):
        dice = float(rng.uniform(0, 1))
        signals = {"mean_entropy": 1 - dice + rng.normal(0, 0.05), "critic_score": float(rng.uniform()),
                   "organ_volume_ml": 1000.0 * (1 + 3 * (dice < 0.5)), "num_components": int(1 + 5 * (dice < 0.3))}
        samples.append({"signals": signals, "dice": dice})
    return samples


def test_fitted_model_orders_cases_by_quality_and_refits_without_an_unavailable_signal():
    samples = _samples()
    reference = volume_reference([900.0, 1000.0, 1100.0])
    model = fit_quality_model(samples, reference)
    assert set(model["features"]) == {"mean_entropy", "critic_score", "volume_deviation", "num_components"}
    good = {"mean_entropy": 0.05, "critic_score": 0.5, "organ_volume_ml": 1000.0, "num_components": 1}
    bad = {"mean_entropy": 0.9, "critic_score": 0.5, "organ_volume_ml": 4000.0, "num_components": 6}
    dice_good, failure_good = apply_quality_model(model, good, reference)
    dice_bad, failure_bad = apply_quality_model(model, bad, reference)
    assert dice_good > 0.7 > 0.3 > dice_bad and failure_good < 0.2 < 0.8 < failure_bad
    estimator = QualityEstimator({"volume_reference": reference, "samples": samples, "model": model})
    refit = estimator.model_for({"critic_score": "no discriminator"})
    assert "critic_score" not in refit["features"] and refit["num_samples"] == len(samples)
    record = estimator.estimate({**good, "critic_score": None}, {"critic_score": "no discriminator"})
    assert "critic_unavailable" in record["flags"] and not record["flagged"]
    assert record["signals"]["critic_score"] is None


def test_features_derive_volume_deviation_and_log_components():
    reference = {"log_mean": np.log(101.0), "log_std": 0.5}
    raw = features({"organ_volume_ml": 100.0 * np.e - 1 + np.e, "num_components": 3}, reference)
    assert raw["volume_deviation"] == pytest.approx(2.0, rel=1e-6)
    assert raw["num_components"] == pytest.approx(np.log(4.0)) and raw["critic_score"] is None


@pytest.mark.parametrize("degradation", CALIBRATION + HELD_OUT, ids=lambda d: d.name)
def test_degradations_keep_image_and_label_on_one_grid(degradation):
    rng = np.random.default_rng(0)
    data = rng.normal(100, 20, (12, 10, 8)).astype(np.float32)
    label = np.zeros((12, 10, 8), np.uint8)
    label[2:5, 3:6, 1:4] = 1
    image = Volume(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    degraded, degraded_label = degrade(degradation, image, label, seed=1)
    assert degraded.data.shape == degraded_label.shape and degraded.data.dtype == np.float32
    assert not np.array_equal(degraded.data, data) or degradation.kind == "crop"
    np.testing.assert_array_equal(image.data, data)  # inputs untouched
    if degradation.kind == "inversion":
        np.testing.assert_allclose(degraded.data, data.max() + data.min() - data)
    if degradation.kind == "orientation":
        np.testing.assert_array_equal(degraded_label, np.swapaxes(label, 1, 2))
    if degradation.kind == "crop":
        assert degraded.shape[0] < data.shape[0] and degraded_label.sum() <= label.sum()
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(Degradation("melt"), image, label)


def test_calibration_and_test_degradations_differ():
    assert not {d.name for d in CALIBRATION} & {d.name for d in HELD_OUT}


def test_auroc_aurc_and_risk_coverage_on_hand_computed_cases():
    assert auroc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert auroc([1, 0], [0.5, 0.5]) == 0.5 and auroc([1, 1], [0.1, 0.2]) is None
    coverage, risk = risk_coverage([0.9, 0.1, 0.5], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(coverage, [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(risk, [0.0, 0.25, 0.5])
    assert aurc([0.9, 0.1, 0.5], [0.0, 1.0, 0.5]) == pytest.approx(0.25)


def test_flag_summary_splits_flags_and_verdicts_by_measured_dice():
    cases = ((0.0, "fail"), (0.2, "review"), (0.45, "fail"), (0.6, "fail"), (0.8, "ok"), (0.9, "review"))
    rows = [{"dice": d, "flagged": v == "fail", "verdict": v} for d, v in cases]
    summary = flag_summary(rows)
    assert summary["badly_wrong (Dice < 0.3)"] == {"scans": 2, "flagged": 1,
                                                   "verdicts": {"ok": 0, "review": 1, "fail": 1}}  # fmt: skip
    assert summary["failure (Dice < 0.5)"]["flagged"] == 2 and summary["good (Dice >= 0.5)"]["flagged"] == 1
    assert summary["well_segmented (Dice >= 0.7)"] == {"scans": 2, "flagged": 0,
                                                       "verdicts": {"ok": 1, "review": 1, "fail": 0}}  # fmt: skip
    # Rows of a cases.json written before verdicts existed are still summarized (without verdict counts).
    assert flag_summary([{"dice": 0.9, "flagged": False}])["good (Dice >= 0.5)"] == {"scans": 1, "flagged": 0}
