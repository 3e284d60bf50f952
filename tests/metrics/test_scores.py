"""Score mappings: CHAOS thresholds, the chosen RMSD limit, SLIVER07 references, failures scoring 0."""

import math

import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.metrics import compute_scores
from keras_cdseg.metrics.scores import CHAOS_RMSD_LIMIT_MM, linear_score


def _metrics(**overrides):
    values = {
        "dice": 1.0, "vo_percent": 100.0, "voe_percent": 0.0, "abs_rvd_percent": 0.0,
        "assd_mm": 0.0, "rmsd_mm": 0.0, "mssd_mm": 0.0,
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    "overrides, score_name, expected",
    [
        ({"dice": 0.79}, "dice", 0.0),
        ({"dice": 0.8}, "dice", 80.0),
        ({"dice": 0.95}, "dice", 95.0),
        ({"vo_percent": 87.5}, "vo", 87.5),
        ({"abs_rvd_percent": 2.5}, "rvd", 50.0),
        ({"abs_rvd_percent": 5.0}, "rvd", 0.0),
        ({"abs_rvd_percent": 12.0}, "rvd", 0.0),
        ({"assd_mm": 7.5}, "assd", 50.0),
        ({"assd_mm": 3.0}, "assd", 80.0),
        ({"assd_mm": 16.0}, "assd", 0.0),
        ({"mssd_mm": 30.0}, "mssd", 50.0),
        ({"mssd_mm": 60.0}, "mssd", 0.0),
        ({"rmsd_mm": 13.5}, "rmsd", 50.0),
        ({"rmsd_mm": 27.0}, "rmsd", 0.0),
        ({"assd_mm": math.inf}, "assd", 0.0),
        ({"dice": math.nan}, "dice", 0.0),
    ],
)
def test_chaos_mapping(overrides, score_name, expected):
    assert compute_scores(_metrics(**overrides), "chaos")[score_name] == pytest.approx(expected)


def test_chaos_overall_is_the_mean_of_the_papers_five_columns():
    metrics = _metrics(dice=0.9, vo_percent=80.0, abs_rvd_percent=1.0, assd_mm=1.5, rmsd_mm=2.7, mssd_mm=24.0)
    scores = compute_scores(metrics, "chaos")
    assert scores == pytest.approx(
        {"dice": 90.0, "vo": 80.0, "rvd": 80.0, "assd": 90.0, "rmsd": 90.0, "mssd": 60.0,
         "overall": (80 + 80 + 90 + 90 + 60) / 5, "chaos_overall": (90 + 80 + 90 + 60) / 4}
    )


def test_sliver07_reference_errors_score_75():
    metrics = _metrics(voe_percent=6.4, abs_rvd_percent=4.7, assd_mm=1.0, rmsd_mm=1.8, mssd_mm=19.0)
    scores = compute_scores(metrics, "sliver07")
    assert scores == pytest.approx({"voe": 75.0, "rvd": 75.0, "assd": 75.0, "rmsd": 75.0, "mssd": 75.0,
                                    "overall": 75.0})
    assert compute_scores(_metrics(assd_mm=5.0), "sliver07")["assd"] == 0.0


def test_perfect_metrics_score_100_and_rmsd_limit_is_between_assd_and_mssd_limits():
    assert compute_scores(_metrics(), "chaos")["overall"] == 100.0
    assert 15.0 < CHAOS_RMSD_LIMIT_MM < 60.0
    assert linear_score(None, 10.0) == 0.0


def test_unknown_scheme():
    with pytest.raises(InputError, match="scoring"):
        compute_scores(_metrics(), "brats")
