"""Mean ± std over seeds and paired differences with t-intervals."""

import math

import pytest

from keras_cdseg.experiments.stats import excludes_zero, mean_std, paired_difference


def test_mean_std_uses_the_sample_std_and_skips_non_finite_values():
    assert mean_std([1.0, 2.0, 3.0, float("nan"), None]) == (2.0, 1.0, 3)
    assert mean_std([4.0]) == (4.0, None, 1)
    assert mean_std([]) == (None, None, 0)


def test_paired_difference_is_a_t_interval_over_the_shared_seeds():
    variant = {0: 11.0, 1: 12.0, 2: 13.0, 3: 99.0}
    reference = {0: 10.0, 1: 10.0, 2: 10.0, 5: 0.0}
    result = paired_difference(variant, reference)
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302653
    assert result["n"] == 3 and result["seeds"] == [0, 1, 2]
    assert result["mean"] == pytest.approx(2.0)
    assert result["low"] == pytest.approx(2.0 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert result["high"] == pytest.approx(2.0 + 4.302653 / math.sqrt(3), abs=1e-5)
    assert not excludes_zero(result)
    assert excludes_zero(paired_difference({0: 5.0, 1: 5.2}, {0: 1.0, 1: 1.1}))


def test_one_pair_has_no_interval_and_no_pair_has_no_mean():
    one = paired_difference({0: 3.0}, {0: 1.0})
    assert (one["n"], one["mean"], one["low"], one["high"]) == (1, 2.0, None, None)
    assert not excludes_zero(one)
    assert paired_difference({0: 3.0}, {1: 1.0})["mean"] is None


def test_identical_differences_give_a_zero_width_interval():
    result = paired_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
    assert result["low"] == pytest.approx(1.0) and result["high"] == pytest.approx(1.0)
