"""Organ-level checks: volumes and world centroids of a label map, and the warnings they give on the real CT's
reference labels as they are, mirrored, upside down, with an organ missing or shrunk, and with a pair swapped."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from keras_cdseg.inference.quality.anatomy import (
    anatomy_warnings,
    label_volumes_ml,
    organ_summary,
    organ_volume_references,
)
from keras_cdseg.inference.quality.assess import quality_record
from keras_cdseg.inference.quality.estimate import QualityEstimator

REAL = Path(__file__).resolve().parents[2] / "data" / "real"
LABELS = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
# TotalSegmentator's values in the real CT's reference map (see tests/data/real/NOTICE).
TOTALSEG = {5: 1, 2: 2, 3: 3, 1: 4}


@pytest.fixture(scope="module")
def real_labels():
    image = nib.load(str(REAL / "ct_abdomen_3mm_organs.nii.gz"))
    source = np.asarray(image.dataobj)
    labels = np.zeros(source.shape, np.uint8)
    for value, ours in TOTALSEG.items():
        labels[source == value] = ours
    return labels, image.affine


def codes(warnings):
    return [w["code"] for w in warnings]


def test_summary_gives_volume_and_world_centroid_under_any_axis_order():
    labels = np.zeros((10, 8, 6), np.uint8)
    labels[2:4, 1:6, 0:3] = 2  # 2 x 5 x 3 voxels, mean index (2.5, 3, 1)
    affine = np.array([[-0.5, 0, 0, 10.0], [0, 2.0, 0, -4.0], [0, 0, 3.0, 7.0], [0, 0, 0, 1]])
    summary = organ_summary(labels, affine, LABELS)
    assert summary["right_kidney"]["volume_ml"] == 30 * 3.0 / 1000  # every voxel counts
    # the centroid comes from every second voxel: within one voxel of the true (8.75, 2.0, 10.0)
    error = np.abs(np.subtract(summary["right_kidney"]["centroid_mm"], [8.75, 2.0, 10.0]))
    assert np.all(error <= [0.5, 2.0, 3.0])  # the voxel size along each world axis
    assert summary["liver"] == {"volume_ml": 0.0, "centroid_mm": None}
    assert "background" not in summary
    fortran = organ_summary(np.asfortranarray(labels), affine, LABELS)
    assert fortran == summary and label_volumes_ml(labels, affine, LABELS)["right_kidney"] == 0.09
    labels[9, 7, 5] = 4  # one voxel: absent from the sample, its centroid taken from every voxel
    assert organ_summary(labels, affine, LABELS)["spleen"] == {"volume_ml": 0.003, "centroid_mm": [5.5, 10.0, 22.0]}


def test_the_real_ct_reference_labels_pass_and_each_defect_is_named(real_labels):
    labels, affine = real_labels
    references = organ_volume_references([label_volumes_ml(labels, affine, LABELS)])
    assert anatomy_warnings(organ_summary(labels, affine, LABELS), references) == []

    mirrored = anatomy_warnings(organ_summary(labels[::-1], affine, LABELS), references)
    assert codes(mirrored) == ["mirrored_anatomy"] and mirrored[0]["level"] == "fail"
    assert "liver left of the spleen and right_kidney left of the left_kidney" in mirrored[0]["reason"]

    upside_down = anatomy_warnings(organ_summary(labels[:, :, ::-1], affine, LABELS), references)
    assert codes(upside_down) == ["upside_down"] and upside_down[0]["level"] == "review"

    swapped = labels.copy()
    swapped[labels == 2], swapped[labels == 3] = 3, 2
    one_pair = anatomy_warnings(organ_summary(swapped, affine, LABELS), references)
    assert codes(one_pair) == ["organs_on_wrong_side"] and "right_kidney left of the left_kidney" in one_pair[0]["reason"]

    no_spleen = np.where(labels == 4, 0, labels)
    missing = anatomy_warnings(organ_summary(no_spleen, affine, LABELS), references)
    assert codes(missing) == ["organ_not_found"] and missing[0]["reason"].startswith("spleen not found")


def test_volume_ranges_come_from_reference_segmentations_and_skip_the_estimates_organ(real_labels):
    labels, affine = real_labels
    volumes = label_volumes_ml(labels, affine, LABELS)
    references = organ_volume_references([volumes, {name: 1.5 * v for name, v in volumes.items()}])
    assert references["spleen"]["min_ml"] == pytest.approx(volumes["spleen"])
    assert references["spleen"]["max_ml"] == pytest.approx(1.5 * volumes["spleen"])
    shrunk = labels.copy()
    kidney = np.argwhere(labels == 2)
    shrunk[tuple(kidney[len(kidney) // 5 :].T)] = 0  # a fifth of the right kidney is left
    small_liver = np.where((labels == 1) & (np.arange(labels.shape[2]) > labels.shape[2] // 2), 0, labels)
    found = anatomy_warnings(organ_summary(shrunk, affine, LABELS), references, skip_volume=("liver",))
    assert codes(found) == ["implausible_organ_volume"] and found[0]["reason"].startswith("right_kidney ")
    # The liver's volume is the quality estimate's to judge (triage's implausible_volume), not judged twice.
    assert anatomy_warnings(organ_summary(small_liver, affine, LABELS), references, skip_volume=("liver",)) == []
    assert anatomy_warnings(organ_summary(np.zeros_like(labels), affine, LABELS), references) == []


def test_an_outlying_reference_volume_does_not_widen_the_range():
    """The 34 real scans' right kidneys as measured (mL): one atrophic pair far below the rest."""
    kidneys = [10.0, 80, 106, 119, 125, 131, 140, 146, 152, 160, 171, 188, 203, 231, 252, 253, 258]
    reference = organ_volume_references([{"right_kidney": v} for v in kidneys])["right_kidney"]
    assert (reference["min_ml"], reference["max_ml"], reference["num_outliers"]) == (80, 258, 1)
    assert reference["num_cases"] == len(kidneys) - 1
    # Too few references to call one an outlier: the range keeps every volume.
    few = organ_volume_references([{"right_kidney": v} for v in (10.0, 140, 150, 160)])["right_kidney"]
    assert (few["min_ml"], few["num_outliers"]) == (10.0, 0)
    # A kidney found as a 20 mL fragment: passed by the old 5 mL bound, warned by the 40 mL one.
    organs = {"right_kidney": {"volume_ml": 20.0, "centroid_mm": [0.0, 0.0, 0.0]}}
    assert codes(anatomy_warnings(organs, {"right_kidney": reference})) == ["implausible_organ_volume"]


def test_the_estimator_judges_organ_warnings_with_its_own(real_labels):
    labels, affine = real_labels
    estimator = QualityEstimator(None, organ_name="liver")
    signals = {"organ_volume_ml": 1000.0}
    plain = estimator.estimate(signals)
    assert plain["verdict"] == "review" and "organs" not in plain  # no calibration, no organ checks asked for
    mirrored = estimator.estimate(signals, organs=organ_summary(labels[::-1], affine, LABELS))
    assert mirrored["verdict"] == "fail" and mirrored["flagged"]
    assert mirrored["flags"][:2] == ["mirrored_anatomy", "no_calibration"]
    assert set(mirrored["organs"]) == {"liver", "right_kidney", "left_kidney", "spleen"}


def test_quality_records_keep_organ_ranges_but_not_the_samples_organ_results(real_labels):
    labels, affine = real_labels
    samples = [{"case_id": f"c{k}", "degradation": "none", "dice": dice, "signals": {"organ_volume_ml": 1000.0 + k},
                "organs": {}, "organ_dice": {"liver": dice}} for k, dice in enumerate([0.9, 0.3, 0.95, 0.2])]  # fmt: skip
    record = quality_record(samples, [1000.0, 1200.0], LABELS, [], False, 0.0,
                            organ_reference_volumes=[label_volumes_ml(labels, affine, LABELS)])  # fmt: skip
    assert set(record["organ_volume_references"]) == {"liver", "right_kidney", "left_kidney", "spleen"}
    assert all(set(s) == {"case_id", "degradation", "dice", "signals"} for s in record["samples"])
    assert quality_record(samples, [1000.0], LABELS, [], False, 0.0)["organ_volume_references"] is None
