"""evaluate_case / evaluate_cases on in-memory label maps, and the summary statistics."""

import math

import numpy as np
import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.evaluation import CasePair, check_labels, describe, evaluate_case, evaluate_cases, summarize
from keras_cdseg.metrics import compute_segmentation_metrics

LABELS = {"background": 0, "liver": 1, "spleen": 2}


def _pair(case_id="case_a", modality=None, shift=1):
    labels_gt = np.zeros((20, 18, 8), np.uint8)
    labels_gt[3:13, 3:13, 1:7] = 1
    labels_gt[14:18, 12:16, 2:6] = 2
    labels_pred = np.roll(labels_gt, shift, axis=0)
    labels_pred[0:2, 0:2, 0:2] = 1  # liver island, removed when the liver is post-processed
    labels_pred[0:2, 16:18, 6:8] = 2  # spleen island, kept (only the liver is post-processed below)
    return CasePair(case_id, labels_gt, labels_pred, (0.8, 0.8, 2.0), modality=modality)


def test_evaluate_case_applies_largest_component_only_to_the_listed_classes():
    pair = _pair()
    result = evaluate_case(pair, LABELS, largest_component_classes=("liver",))
    assert list(result["classes"]) == ["liver", "spleen"]
    cleaned = np.roll(pair.labels_gt, 1, axis=0) == 1
    expected_liver = compute_segmentation_metrics(pair.labels_gt == 1, cleaned, pair.spacing_mm)
    assert result["classes"]["liver"]["dice"] == pytest.approx(expected_liver["dice"])
    assert result["classes"]["liver"]["mssd_mm"] == pytest.approx(expected_liver["mssd_mm"])
    spleen = result["classes"]["spleen"]
    assert spleen["num_voxels_pred"] == 4 * 4 * 4 + 8 and spleen["label_value"] == 2
    assert result["classes"]["liver"]["num_components_pred_before"] == 2
    assert result["classes"]["liver"]["num_components_pred"] == 1
    assert spleen["num_components_pred"] == 2 and not spleen["largest_component"]
    # The default scores the prediction as given.
    unprocessed = evaluate_case(pair, LABELS)
    assert unprocessed["classes"]["liver"]["num_voxels_pred"] == 10 * 10 * 6 + 8
    assert unprocessed["classes"]["liver"]["num_components_pred"] == 2
    # The input arrays are never modified.
    assert (pair.labels_pred == 1).sum() == 10 * 10 * 6 + 8


def test_empty_prediction_is_flagged_per_class():
    pair = _pair()
    labels_pred = pair.labels_pred.copy()
    labels_pred[labels_pred == 2] = 0
    result = evaluate_case(CasePair("c", pair.labels_gt, labels_pred, pair.spacing_mm), LABELS)
    assert result["flags"] == ["spleen:empty_pred"]
    assert math.isinf(result["classes"]["spleen"]["assd_mm"])
    assert result["classes"]["spleen"]["scores"]["overall"] == 0.0


def test_bad_cases_name_the_case():
    pair = _pair()
    with pytest.raises(InputError, match="case_x: prediction shape"):
        evaluate_case(CasePair("case_x", pair.labels_gt, pair.labels_pred[:-1], pair.spacing_mm), LABELS)
    with pytest.raises(InputError, match="case_y: prediction label map must be integer"):
        evaluate_case(CasePair("case_y", pair.labels_gt, pair.labels_pred * 0.5, pair.spacing_mm), LABELS)
    with pytest.raises(InputError, match="case_z: spacing_mm"):
        evaluate_case(CasePair("case_z", pair.labels_gt, pair.labels_pred, (1.0, 1.0)), LABELS)


@pytest.mark.parametrize(
    "labels, message",
    [({"background": 0}, "no foreground"), ({"liver": 300}, "1..255"), ({"a": 1, "b": 1}, "share a value")],
)
def test_check_labels(labels, message):
    with pytest.raises(InputError, match=message):
        check_labels(labels)


def test_evaluate_cases_streams_a_generator_and_reports_progress(capsys):
    pairs = (_pair(f"case_{i}", shift=i) for i in range(3))
    results = evaluate_cases(pairs, LABELS, num_cases=3, scoring="sliver07", largest_component_classes=("liver",))
    assert [r["case_id"] for r in results] == ["case_0", "case_1", "case_2"]
    assert results[0]["classes"]["liver"]["dice"] == 1.0
    assert "voe" in results[0]["classes"]["liver"]["scores"]
    assert "evaluate 3/3 case_2" in capsys.readouterr().err


def test_describe_keeps_non_finite_values_visible():
    stats = describe([1.0, 3.0, math.inf])
    assert stats["mean"] == math.inf and stats["num_nonfinite"] == 1
    assert stats["mean_finite"] == 2.0 and stats["std_finite"] == 1.0 and stats["median"] == 3.0
    assert math.isnan(describe([])["mean"]) and describe([])["num_nonfinite"] == 0


def test_summarize_groups_by_modality():
    results = evaluate_cases(
        [_pair("ct_1", "CT", 0), _pair("ct_2", "CT", 2), _pair("mr_1", "MR", 1), _pair("x", None, 1)],
        LABELS,
        progress=False,
    )
    summary = summarize(results, ["liver", "spleen"])
    assert list(summary["liver"]) == ["all", "CT", "MR", "unknown"]
    assert [summary["liver"][g]["num_cases"] for g in ("all", "CT", "MR", "unknown")] == [4, 2, 1, 1]
    ct_dice = [r["classes"]["liver"]["dice"] for r in results[:2]]
    assert summary["liver"]["CT"]["metrics"]["dice"]["mean"] == pytest.approx(np.mean(ct_dice))
    assert summary["liver"]["CT"]["metrics"]["dice"]["std"] == pytest.approx(np.std(ct_dice))
    assert summary["liver"]["all"]["scores"]["overall"]["num_nonfinite"] == 0
    only_all = summarize(results[3:], ["liver"])
    assert list(only_all["liver"]) == ["all"]
