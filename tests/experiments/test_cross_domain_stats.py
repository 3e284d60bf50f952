"""Bootstrap means over cases and paired comparisons (the cross-domain benchmark's statistics)."""

import numpy as np
import pytest

from keras_cdseg.experiments.stats import bootstrap_mean, paired_bootstrap


def test_a_constant_sample_has_a_zero_width_interval():
    result = bootstrap_mean([0.8] * 12)
    assert result["n"] == 12 and result["mean"] == pytest.approx(0.8)
    assert result["low"] == result["high"] == result["mean"]


def test_missing_and_non_finite_values_are_left_out_and_one_value_gives_no_interval():
    assert bootstrap_mean([0.5, None, float("inf"), float("nan")]) == {"n": 1, "mean": 0.5, "low": None, "high": None}
    assert bootstrap_mean([]) == {"n": 0, "mean": None, "low": None, "high": None}


def test_the_interval_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(1).normal(0.85, 0.05, size=17)
    first, again = bootstrap_mean(values, seed=5), bootstrap_mean(values, seed=5)
    assert first == again and first["low"] < first["mean"] < first["high"]
    assert bootstrap_mean(values, seed=6)["low"] != first["low"]


def test_coverage_on_normal_samples_is_close_to_95_percent():
    rng = np.random.default_rng(0)
    trials, covered = 300, 0
    for trial in range(trials):
        result = bootstrap_mean(rng.normal(10.0, 2.0, size=40), num_resamples=1000, seed=trial)
        covered += result["low"] <= 10.0 <= result["high"]
    assert 0.89 <= covered / trials <= 0.99  # the percentile bootstrap under-covers slightly at n = 40


def test_paired_differences_have_the_sign_of_values_minus_reference_and_pair_by_case():
    reference = {f"c{i}": 0.70 + 0.01 * i for i in range(10)}
    better = {case: value + 0.05 + 0.001 * (i % 3) for i, (case, value) in enumerate(reference.items())}
    better["only_here"] = 0.0  # unpaired: ignored
    result = paired_bootstrap(better, reference)
    assert result["n"] == 10 and result["mean"] == pytest.approx(0.051, abs=1e-3)
    assert 0 < result["low"] <= result["mean"] <= result["high"]
    assert result["wilcoxon_p"] < 0.01
    worse = paired_bootstrap(reference, better)
    assert worse["mean"] == pytest.approx(-result["mean"]) and worse["high"] < 0


def test_identical_models_give_zero_difference_and_p_one():
    values = {f"c{i}": 0.5 + 0.02 * i for i in range(6)}
    result = paired_bootstrap(values, dict(values))
    assert (result["mean"], result["low"], result["high"], result["wilcoxon_p"]) == (0.0, 0.0, 0.0, 1.0)
    assert paired_bootstrap({"a": 1.0}, {"a": 0.5})["wilcoxon_p"] is None
