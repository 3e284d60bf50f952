"""The leave-one-fold-out check of a quality estimate pooled from the benchmark's folds (no model trained)."""

import pytest

from keras_cdseg.experiments.fold_calibration import cross_validate_estimate
from tests.inference.quality.quality_fixtures import hand_made_calibration


def _folded(samples, num_folds):
    return [{**sample, "fold": int(sample["case_id"][1:]) % num_folds} for sample in samples]


def test_each_fold_is_scored_by_an_estimate_fitted_on_the_other_folds_only():
    samples = _folded(hand_made_calibration(1500.0)["samples"], 4)
    reference = {fold: [1400.0, 1500.0, 1600.0] for fold in range(4)}
    checked = cross_validate_estimate(samples, reference)
    every = checked["all_samples"]
    assert every["num_samples"] == 40 and checked["clean_scans"]["num_samples"] == 20
    # confident typical predictions succeed, unsure huge ones fail: held-out folds are told apart
    assert every["metrics"]["auroc_failure"] == 1.0
    failures = every["flags"]["failure (Dice < 0.5)"]
    assert failures["scans"] == 20 and failures["flagged"] == 20
    assert every["flags"]["good (Dice >= 0.5)"]["flagged"] == 0
    assert {case["case_id"] for case in checked["cases"]} == {f"c{i}" for i in range(20)}
    assert checked["clean_scans"]["metrics"]["auroc_failure"] is None  # no clean failure: nothing to rank


def test_a_fold_whose_signals_contradict_the_others_is_predicted_badly_not_memorised():
    samples = _folded(hand_made_calibration(1500.0)["samples"], 2)
    flipped = [
        {**s, "dice": 1.0 - s["dice"]} if s["fold"] == 1 else s for s in samples
    ]  # fold 1: confident predictions fail
    checked = cross_validate_estimate(flipped, {0: [1500.0], 1: [1500.0]})
    fold1 = [case for case in checked["cases"] if case["fold"] == 1]
    assert all(case["dice"] < 0.5 and case["estimated_dice"] > 0.5 for case in fold1)
    assert checked["all_samples"]["metrics"]["auroc_failure"] == pytest.approx(0.0, abs=0.3)
