"""The quality flag on degradations its calibration never saw, from kept fold samples (no model trained)."""

import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.fold_calibration import FOLD_FILE
from keras_cdseg.experiments.fold_quality_check import HELD_OUT_FILE, check_on_held_out, render_held_out_check
from keras_cdseg.inference.quality.degradations import CALIBRATION, HELD_OUT
from keras_cdseg.inference.volume import LABEL_RESTORATION
from keras_cdseg.io_utils import write_json_atomic
from tests.inference.quality.quality_fixtures import hand_made_calibration


def _kept(degradations, samples):
    return {"variant": "method", "degradations": [d.name for d in degradations], "perturbations": False,
            "label_restoration": LABEL_RESTORATION,
            "labels": {"background": 0, "liver": 1}, "samples": samples, "reference_volumes_ml": [1400.0, 1500.0, 1600.0]}  # fmt: skip


def _held_out(fold):
    """Per fold: a typical confident scan that is right, one that is silently wrong, an unsure huge failure."""
    typical = {"mean_entropy": 0.05, "organ_volume_ml": 1500.0}
    return [
        {"case_id": f"ct{fold}", "degradation": "none", "dice": 0.9, "signals": typical},  # clean: not counted
        {"case_id": f"ct{fold}", "degradation": "gamma_3", "dice": 0.9, "signals": typical},
        {"case_id": f"mr{fold}", "degradation": "gamma_3", "dice": 0.7, "signals": typical},
        {"case_id": f"mr{fold}", "degradation": "ghosting_0.5", "dice": 0.1,
         "signals": {"mean_entropy": 0.8, "organ_volume_ml": 6000.0}},
    ]  # fmt: skip


@pytest.fixture
def results_dir(tmp_path):
    calibration = hand_made_calibration(1500.0)["samples"]
    write_json_atomic(tmp_path / "folds.json", {"folds": [{"fold": 0}, {"fold": 1}]})
    write_json_atomic(tmp_path / "results.json", {"cases": [{"case_id": f"{m}{f}", "modality": m.upper()}
                                                            for m in ("ct", "mr") for f in (0, 1)]})  # fmt: skip
    for fold in (0, 1):
        root = tmp_path / "runs" / f"fold{fold}" / "method"
        write_json_atomic(root / FOLD_FILE, _kept(CALIBRATION, calibration))  # each fold: the same 40 samples
        write_json_atomic(root / HELD_OUT_FILE, _kept(HELD_OUT, _held_out(fold)))
    return tmp_path


def test_held_out_samples_are_scored_by_the_other_folds_and_silent_failures_counted(results_dir):
    record = check_on_held_out(results_dir, log=lambda _: None)
    assert record["folds"] == [0, 1] and record["degradations"] == ["gamma_3", "ghosting_0.5"]
    overall = record["overall"]
    assert overall["num_samples"] == 6 and overall["below_0.80"] == 4  # the clean samples are left out
    # confident, typical-volume predictions look fine to the estimate: the one at Dice 0.7 is missed per fold
    assert overall["missed"] == 2 and overall["verdicts_below_0.80"]["fail"] == 2
    assert overall["verdicts_at_or_above_0.80"]["fail"] == 0 and overall["worst_missed_dice"] == 0.7
    assert record["by_modality"]["MR"]["num_samples"] == 4 and record["by_modality"]["CT"]["below_0.80"] == 0
    assert record["by_degradation"]["ghosting_0.5"]["verdicts_below_0.80"] == {"ok": 0, "review": 0, "fail": 2}
    table = render_held_out_check(record)
    assert "| gamma_3 | 4 | 0.800 | 2 | 2 / 0 / 0 | 0.700 | 2 / 0 / 0 |" in table and "| **all** | 6 |" in table


def test_a_directory_without_folds_or_with_one_measured_fold_is_refused(results_dir, tmp_path_factory):
    with pytest.raises(InputError, match="not a cross-domain results directory"):
        check_on_held_out(tmp_path_factory.mktemp("empty"), log=lambda _: None)
    (results_dir / "runs" / "fold1" / "method" / HELD_OUT_FILE).unlink()
    with pytest.raises(InputError, match="needs at least two folds"):
        check_on_held_out(results_dir, log=lambda _: None)
