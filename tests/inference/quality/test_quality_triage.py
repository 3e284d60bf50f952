"""The verdict ok / review / fail: its thresholds, the +59 % over-segmented real liver of issue 19, a label map
fed in as a scan, notes kept apart from warnings, and the case's console line."""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from keras_cdseg.data.nifti_io import Volume
from keras_cdseg.inference.quality.assess import assess_volume, dice_of
from keras_cdseg.inference.quality.calibration import volume_reference
from keras_cdseg.inference.quality.estimate import QualityEstimator
from keras_cdseg.inference.quality.signals import QualityProbe
from keras_cdseg.inference.quality.triage import (
    REVIEW_DICE,
    count_intensity_levels,
    format_case_line,
    judge,
    looks_like_label_map,
    typical_ranges,
    verdict_at_least,
    verdict_counts,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_fixtures import threshold_card, threshold_predictor  # noqa: E402
from quality_fixtures import hand_made_calibration  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "data" / "real"
REAL_LIVER = 5
REFERENCE = {"log_mean": float(np.log(1500.0)), "log_std": 0.2, "min_ml": 1100.0, "max_ml": 2100.0, "num_cases": 8}
SCAN = {"input_distinct_values": 1024, "input_nonnegative_integers": False}


def _judge(dice, failure, volume_ml, calibrated=True, **signals):
    return judge(dice, failure, {"organ_volume_ml": volume_ml, **SCAN, **signals}, REFERENCE, calibrated, "liver")


@pytest.mark.parametrize(
    "dice, failure, volume_ml, calibrated, verdict, codes",
    [
        (0.91, 0.05, 1500.0, True, "ok", []),
        (REVIEW_DICE, 0.05, 1500.0, True, "ok", []),  # the threshold itself is not below it
        (0.79, 0.20, 1500.0, True, "review", ["low_estimated_dice"]),
        (0.85, 0.49, 1500.0, True, "ok", []),
        (0.85, 0.50, 1500.0, True, "fail", ["likely_failure"]),
        (0.90, 0.05, 2500.0, True, "review", ["unusual_volume"]),  # above the largest reference
        (0.90, 0.05, 900.0, True, "review", ["unusual_volume"]),
        (0.90, 0.05, 4300.0, True, "fail", ["implausible_volume"]),  # above twice the largest
        (0.90, 0.05, 500.0, True, "fail", ["implausible_volume"]),  # below half the smallest
        (0.40, 0.70, 0.0, True, "fail", ["empty_prediction", "likely_failure", "low_estimated_dice"]),
        (None, None, 1500.0, False, "review", ["no_calibration"]),
        (None, None, 0.0, False, "fail", ["empty_prediction", "no_calibration"]),
    ],
)
def test_verdict_thresholds(dice, failure, volume_ml, calibrated, verdict, codes):
    got, warnings = _judge(dice, failure, volume_ml, calibrated)
    assert got == verdict and [w["code"] for w in warnings] == codes
    assert [w["level"] for w in warnings] == sorted((w["level"] for w in warnings), key=lambda level: level != "fail")
    assert all(w["reason"] for w in warnings)


def test_verdict_order_and_counts():
    assert verdict_at_least("fail", "review") and verdict_at_least("review", "review")
    assert not verdict_at_least("ok", "review") and not verdict_at_least("review", "fail")
    assert verdict_counts(["ok", "fail", "ok", "review"]) == {"ok": 2, "review": 1, "fail": 1}


@pytest.fixture(scope="module")
def real_ct():
    image, organs = nib.load(str(REAL / "ct_abdomen_3mm.nii.gz")), nib.load(str(REAL / "ct_abdomen_3mm_organs.nii.gz"))
    return image, np.asarray(organs.dataobj)


def test_the_over_segmented_real_liver_of_issue_19_is_not_ok(real_ct):
    """The real CT with its liver spilled into the neighbouring soft tissue to +59 % of its volume.

    Issue 19: `cdseg predict` on this CT gave a +59 % liver (Dice 0.687) whose estimate was accurate (0.673,
    failure probability below 0.5, a volume inside the reference range), yet the case was not flagged.
    """
    image, organs = real_ct
    liver = organs == REAL_LIVER
    voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000.0
    hu = np.asarray(image.dataobj)
    soft_tissue = (hu > -100) & (hu < 300)  # the contour leaks into tissue of liver-like density, not into air
    spilled = liver.copy()
    while spilled.sum() < 1.59 * liver.sum():
        spilled = ndimage.binary_dilation(spilled) & soft_tissue
    dice = dice_of(liver, spilled)
    assert 1.59 <= spilled.sum() / liver.sum() < 1.9 and 0.6 < dice < REVIEW_DICE
    volume_ml = float(spilled.sum() * voxel_ml)
    # The volume check alone cannot catch it: reference livers span more than a factor of two.
    reference = volume_reference([0.7 * volume_ml, volume_ml, 1.3 * volume_ml])
    for estimate in (0.673, dice):  # the issue's estimate, and an exact one
        verdict, warnings = judge(estimate, 0.18, {"organ_volume_ml": volume_ml, **SCAN}, reference, True, "liver")
        assert verdict == "review" and [w["code"] for w in warnings] == ["low_estimated_dice"]
    stats = {"case_id": "ct_abdomen", "classes": {"liver": {"volume_ml": volume_ml}}, "seconds": {"total": 0.8},
             "quality": {"verdict": "review", "estimated_dice": 0.673, "warnings": warnings}}  # fmt: skip
    assert format_case_line(stats) == (f"ct_abdomen  liver {volume_ml:.0f} mL  (0.8 s)  review (est. Dice 0.67): "
                                       f"estimated Dice below {REVIEW_DICE:.2f}")  # fmt: skip


def test_a_label_map_fed_as_a_scan_fails_and_the_scan_itself_does_not(real_ct):
    image, organs = real_ct
    card = threshold_card(target_spacing_mm=4.0)
    probe = QualityProbe(threshold_predictor(), organ_value=1)
    estimator = QualityEstimator(hand_made_calibration(1500.0), organ_name="liver")
    results = {}
    for name, data in (("labels", organs), ("scan", np.asarray(image.dataobj))):
        _, signals, unavailable, _ = assess_volume(probe, Volume(data, image.affine), card.data_config, (1,))
        results[name] = estimator.estimate(signals, unavailable)
    labels, scan = results["labels"], results["scan"]
    assert labels["signals"]["input_distinct_values"] == len(np.unique(organs)) == 42
    assert labels["verdict"] == "fail" and labels["warnings"][0]["code"] == "not_a_scan"
    assert "42 distinct integer values: a label map, not a scan" in labels["warnings"][0]["reason"]
    assert scan["signals"]["input_distinct_values"] > 128 and "not_a_scan" not in scan["flags"]


def test_intensity_levels_of_scans_and_label_maps():
    rng = np.random.default_rng(0)
    mr = rng.gamma(2.0, 200.0, (64, 64, 8)).round().astype(np.int16)  # non-negative integers, many levels
    windowed = np.linspace(-125.0, 275.0, 256)[rng.integers(0, 256, (64, 64, 8))]  # 8-bit windowed CT
    phantom = np.where(rng.random((64, 64, 8)) > 0.5, 200, -100) + rng.integers(-8, 9, (64, 64, 8))  # HU phantom
    mask = (rng.random((64, 64, 8)) > 0.7).astype(np.float32)  # a binary mask stored as float
    assert not looks_like_label_map(*count_intensity_levels(mr))
    assert not looks_like_label_map(*count_intensity_levels(windowed))
    assert not looks_like_label_map(*count_intensity_levels(phantom))  # few levels, but negative: a scan
    assert count_intensity_levels(mask) == (2, True) and looks_like_label_map(*count_intensity_levels(mask))
    assert count_intensity_levels(np.arange(10**7) % 7, max_voxels=1000)[0] == 7  # counted on a sample


def test_notes_are_kept_apart_from_warnings_and_volume_deviation_is_output():
    estimator = QualityEstimator(hand_made_calibration(1500.0), organ_name="liver")
    signals = {"mean_entropy": 0.05, "organ_volume_ml": 1500.0 * 1.02, "critic_score": None, **SCAN}
    record = estimator.estimate(signals, {"critic_score": "no discriminator beside the model"})
    assert record["verdict"] == "ok" and record["warnings"] == []
    assert record["notes"] == ["critic_unavailable", "agreement_unavailable"]
    assert record["flags"] == record["notes"] and not record["flagged"]
    reference = estimator.reference
    expected = (np.log(1531.0) - reference["log_mean"]) / reference["log_std"]  # signed: > 0 is larger than typical
    assert record["signals"]["volume_deviation"] == pytest.approx(expected, abs=1e-5)
    bad = estimator.estimate({**signals, "mean_entropy": 0.8, "organ_volume_ml": 4000.0}, {})
    assert bad["verdict"] == "fail" and {"likely_failure", "implausible_volume"} <= {w["code"] for w in bad["warnings"]}
    assert bad["signals"]["volume_deviation"] > 2 and bad["notes"] == ["agreement_unavailable"]
    assert bad["flags"] == [w["code"] for w in bad["warnings"]] + bad["notes"] and bad["flagged"]


def test_typical_ranges_come_from_the_clean_calibration_cases():
    calibration = hand_made_calibration(1500.0)
    calibration["samples"].append({"degradation": "noise_0.4", "dice": 0.1,
                                   "signals": {"mean_entropy": 9.0, "organ_volume_ml": 1.0}})  # fmt: skip
    ranges = typical_ranges(calibration)
    clean = [s for s in calibration["samples"] if s["degradation"] == "none"]
    assert ranges["mean_entropy"] == [round(min(s["signals"]["mean_entropy"] for s in clean), 4),
                                      round(max(s["signals"]["mean_entropy"] for s in clean), 4)]  # fmt: skip
    assert ranges["measured_dice"][0] >= 0.8 and -1.0 < ranges["volume_deviation"][0] < ranges["volume_deviation"][1] < 1
    assert typical_ranges(None) == {}
    record = QualityEstimator(calibration).estimate({"mean_entropy": 0.1, "organ_volume_ml": 1500.0, **SCAN})
    assert record["typical_ranges"] == ranges


def test_case_line_without_estimate_or_quality():
    stats = {"case_id": "a", "classes": {"liver": {"volume_ml": 1043.4}, "spleen": {"volume_ml": 180.2}},
             "seconds": {"total": 1.25}}  # fmt: skip
    assert format_case_line(stats) == "a  liver 1043 mL, spleen 180 mL  (1.2 s)"
    ok = {**stats, "quality": {"verdict": "ok", "estimated_dice": 0.912, "warnings": []}}
    assert format_case_line(ok).endswith("  ok (est. Dice 0.91)")
    warnings = judge(None, None, {"organ_volume_ml": 1000.0, **SCAN}, None, False)[1]
    uncalibrated = {**stats, "quality": {"verdict": "review", "estimated_dice": None, "warnings": warnings}}
    assert format_case_line(uncalibrated).endswith("  review: the model has no quality calibration")
