"""nnU-Net's largest-component choice from kept per-fold scores (no model trained)."""

import json

import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.postprocessing_check import (
    FOLD_POSTPROCESSING_FILE,
    check_postprocessing,
    render_postprocessing_check,
)
from keras_cdseg.inference.volume import LABEL_RESTORATION
from keras_cdseg.io_utils import write_json_atomic


def _organ(before, after):
    def scores(dice):
        return {"dice": dice, "assd_mm": 10 * (1 - dice), "mssd_mm": 100 * (1 - dice)}

    return {"changed": before != after, "as_predicted": scores(before), "largest_component": scores(after)}


@pytest.fixture
def results_dir(tmp_path):
    """Two folds; the step removes a stray island of the liver (helps) and cuts a split spleen in half (hurts)."""
    write_json_atomic(tmp_path / "folds.json", {"folds": [{"fold": 0}, {"fold": 1}, {"fold": 2}]})
    for fold in (0, 1):
        cases = [
            {"case_id": f"ct{fold}", "modality": "CT", "organs": {"liver": _organ(0.90, 0.94), "spleen": _organ(0.9, 0.9)}},
            {"case_id": f"mr{fold}", "modality": "MR", "organs": {"liver": _organ(0.85, 0.85), "spleen": _organ(0.9, 0.5)}},
        ]  # fmt: skip
        write_json_atomic(tmp_path / "runs" / f"fold{fold}" / "method" / FOLD_POSTPROCESSING_FILE,
                          {"variant": "method", "label_restoration": LABEL_RESTORATION, "organs": ["liver", "spleen"],
                           "cases": cases})  # fmt: skip
    return tmp_path


def test_the_step_is_kept_only_for_organs_whose_mean_dice_it_does_not_lower(results_dir):
    lines = []
    record = check_postprocessing(results_dir, log=lines.append)
    assert record["folds"] == [0, 1] and len(record["cases"]) == 4
    assert lines == ["fold 2: no fold_postprocessing.json and no finished method run with its train/ directory to "
                     "measure again; left out"]  # fmt: skip
    liver, spleen = record["organs"]["liver"], record["organs"]["spleen"]
    assert liver["keep_largest_component"] is True and spleen["keep_largest_component"] is False
    assert liver["by_modality"]["all"]["dice_difference"]["mean"] == pytest.approx(0.02)
    assert liver["by_modality"]["CT"]["changed"] == 2 and liver["by_modality"]["MR"]["changed"] == 0
    assert spleen["by_modality"]["MR"]["dice_difference"]["mean"] == pytest.approx(-0.4)
    assert spleen["by_modality"]["CT"]["largest_component"]["mssd_mm"]["mean"] == pytest.approx(10.0)
    table = render_postprocessing_check(record)
    assert "| spleen | all 4 | 2 | 0.900 | 0.700 | -0.2000 [" in table and table.splitlines()[-3].endswith("| **no** |")
    assert "| liver | CT 2 | 2 | 0.900 | 0.940 | +0.0400 [0.0400, 0.0400] | 1.00 → 0.60 | 10.0 → 6.0 |  |" in table


def test_no_benchmark_or_no_measured_fold_is_refused(results_dir, tmp_path_factory):
    with pytest.raises(InputError, match="not a cross-domain results directory"):
        check_postprocessing(tmp_path_factory.mktemp("empty"), log=lambda _: None)
    with pytest.raises(InputError, match="no fold of 'mr_only' has a fold_postprocessing.json"):
        check_postprocessing(results_dir, "mr_only", log=lambda _: None)


def test_scores_of_another_prediction_path_are_not_pooled(results_dir):
    """A kept file made by an older prediction path needs its model again; without train/ the fold is left out."""
    path = results_dir / "runs" / "fold1" / "method" / FOLD_POSTPROCESSING_FILE
    kept = json.loads(path.read_text())
    write_json_atomic(path, {**kept, "label_restoration": "nearest labels"})
    lines = []
    assert check_postprocessing(results_dir, log=lines.append)["folds"] == [0]
    assert lines[0] == ("fold 1: a fold_postprocessing.json made with other settings (label_restoration: 'nearest "
                        f"labels' vs '{LABEL_RESTORATION}') and no finished method run with its train/ directory to "
                        "measure again; left out")  # fmt: skip
