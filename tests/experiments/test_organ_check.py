"""Organ-level warnings measured on kept fold samples (no model trained): caught failures, silent ones, false
alarms, volume ranges from the other folds, and folds measured before the checks left out."""

import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.fold_calibration import FOLD_FILE
from keras_cdseg.experiments.organ_check import check_organ_flags, render_organ_check
from keras_cdseg.inference.quality.degradations import CALIBRATION
from keras_cdseg.inference.volume import LABEL_RESTORATION
from keras_cdseg.io_utils import write_json_atomic

LABELS = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
# RAS centroids (mm; x grows towards the patient's right) of a typical abdomen: liver right of the spleen, right kidney right of the left one,
# liver and spleen above the kidneys.
CENTROIDS = {"liver": [60.0, 0.0, 60.0], "spleen": [-90.0, 20.0, 60.0], "right_kidney": [70.0, 40.0, 0.0],
             "left_kidney": [-60.0, 40.0, 0.0]}  # fmt: skip
VOLUMES = {"liver": 1500.0, "spleen": 250.0, "right_kidney": 150.0, "left_kidney": 150.0}


def _sample(case_id, dice, degradation="none", volumes=None, centroids=None):
    volumes, centroids = {**VOLUMES, **(volumes or {})}, {**CENTROIDS, **(centroids or {})}
    organs = {name: {"volume_ml": volumes[name], "centroid_mm": centroids[name] if volumes[name] else None}
              for name in VOLUMES}  # fmt: skip
    return {"case_id": case_id, "degradation": degradation, "dice": dice.get("liver", 0.9), "signals": {},
            "organs": organs, "organ_dice": {**{name: 0.9 for name in VOLUMES}, **dice}}  # fmt: skip


def _kept(samples, organ_references=None):
    record = {"variant": "method", "degradations": [d.name for d in CALIBRATION], "perturbations": False,
              "label_restoration": LABEL_RESTORATION, "labels": LABELS, "samples": samples,
              "reference_volumes_ml": [1500.0]}  # fmt: skip
    if organ_references is not None:
        record["organ_reference_volumes_ml"] = organ_references
    return record


@pytest.fixture
def results_dir(tmp_path):
    write_json_atomic(tmp_path / "folds.json", {"folds": [{"fold": 0}, {"fold": 1}, {"fold": 2}]})
    references = [VOLUMES, {name: 2 * v for name, v in VOLUMES.items()}]  # kidneys 150-300 mL
    folds = {
        0: [_sample("good0", {}), _sample("no_spleen", {"spleen": 0.0}, volumes={"spleen": 0.0}),
            _sample("tiny_kidney", {"right_kidney": 0.1}, degradation="blur_1.5", volumes={"right_kidney": 20.0})],
        1: [_sample("silent", {"left_kidney": 0.3}),
            _sample("nothing", {name: 0.0 for name in VOLUMES}, degradation="noise_0.8",
                    volumes={name: 0.0 for name in VOLUMES}),
            _sample("swapped_good", {}, centroids={"right_kidney": [-60.0, 40.0, 0.0], "left_kidney": [70.0, 40.0, 0.0]})],
    }  # fmt: skip
    for fold, samples in folds.items():
        write_json_atomic(tmp_path / "runs" / f"fold{fold}" / "method" / FOLD_FILE, _kept(samples, references))
    old = [{k: v for k, v in _sample("old", {}).items() if k not in ("organs", "organ_dice")}]
    write_json_atomic(tmp_path / "runs" / "fold2" / "method" / FOLD_FILE, _kept(old, references))
    return tmp_path


def test_failures_caught_missed_and_warned_good_samples_are_counted(results_dir):
    logged = []
    record = check_organ_flags(results_dir, held_out=False, log=logged.append)
    assert record["folds"] == [0, 1] and any("fold 2: samples measured before" in line for line in logged)
    every = record["by_set"]["all"]
    assert every["num_samples"] == 6 and every["organ_failures"] == 6 and every["organ_failures_caught"] == 5
    assert every["good_samples"] == 2 and every["good_samples_warned"] == 1
    # nothing predicted: no organ-level warning, but the liver's empty_prediction fails the case
    assert every["warnings"] == {"empty_prediction": 1, "implausible_organ_volume": 1, "organ_not_found": 1,
                                 "organs_on_wrong_side": 1}  # fmt: skip
    assert record["by_set"]["clean"]["organ_failures"] == 2 and record["by_set"]["degraded"]["organ_failures_caught"] == 4
    by_case = {f["case_id"]: f for f in record["failures"]}
    assert by_case["no_spleen"]["codes"] == ["organ_not_found"] and by_case["silent"]["codes"] == []
    # 20 mL against the other folds' kidneys of 150-300 mL: below half the smallest
    assert by_case["tiny_kidney"]["reasons"] == ["right_kidney 20 mL is implausible (reference 150-300 mL)"]
    assert [a["case_id"] for a in record["warned_good_samples"]] == ["swapped_good"]
    table = render_organ_check(record)
    assert "| all | 6 | 6 | 5 | 2 | 1 |" in table and "| 1 | silent | none | left_kidney | 0.300 | **none** |" in table


def test_a_directory_without_folds_or_without_organ_results_is_refused(results_dir, tmp_path_factory):
    with pytest.raises(InputError, match="not a cross-domain results directory"):
        check_organ_flags(tmp_path_factory.mktemp("empty"), log=lambda _: None)
    for fold in (0, 1):
        (results_dir / "runs" / f"fold{fold}" / "method" / FOLD_FILE).unlink()
    with pytest.raises(InputError, match="no fold of 'method' has samples with organ-level results"):
        check_organ_flags(results_dir, held_out=False, log=lambda _: None)
