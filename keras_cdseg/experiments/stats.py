"""Statistics over seeds: mean ± std and the paired difference to the reference with a t-interval.

Seeds are the unit of replication: one value per seed (the mean over the test cases of that run). Two
variants trained with the same seed share the train/validation split, initial-weight seed and data order,
so their difference is paired by seed, which removes the seed's own effect from the comparison.

The cross-domain benchmark replicates over test cases instead: `bootstrap_mean` and `paired_bootstrap`.
"""

import math

import numpy as np


def mean_std(values):
    """`(mean, std, n)` of the finite values; std is the sample standard deviation (ddof=1), None for n < 2.

    No finite value gives `(None, None, 0)`.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return float(np.mean(finite)), std, len(finite)


def paired_difference(values, reference, confidence=0.95):
    """Mean of `values[seed] - reference[seed]` over the seeds both have, with a two-sided t-interval.

    Args:
        values: dict seed -> value of the variant.
        reference: dict seed -> value of the reference.
        confidence: float. Coverage of the interval. Defaults to 0.95.

    Returns:
        dict: `n` (paired seeds), `mean` (None if n = 0), `low`/`high` (None if n < 2: no interval from one
        pair), `seeds` (sorted). With identical differences on every seed the interval has zero width.
    """
    from scipy import stats

    seeds = sorted(s for s in set(values) & set(reference) if _finite(values[s]) and _finite(reference[s]))
    differences = np.array([values[s] - reference[s] for s in seeds], dtype=np.float64)
    result = {"n": len(seeds), "mean": None, "low": None, "high": None, "seeds": seeds}
    if not len(seeds):
        return result
    result["mean"] = float(differences.mean())
    if len(seeds) >= 2:
        quantile = stats.t.ppf(0.5 + confidence / 2, len(seeds) - 1)
        half_width = float(quantile * differences.std(ddof=1) / math.sqrt(len(seeds)))
        result["low"], result["high"] = result["mean"] - half_width, result["mean"] + half_width
    return result


def _finite(value):
    return value is not None and math.isfinite(value)


def excludes_zero(difference):
    """True if the difference's interval lies entirely above or below 0 (False without an interval)."""
    low, high = difference["low"], difference["high"]
    return low is not None and (low > 0 or high < 0)


# Cases as the unit of replication (the cross-domain benchmark): one value per test case, every case tested
# once across the folds. A percentile bootstrap needs no normality assumption, which Dice (bounded, skewed
# towards 1) and surface distances (heavy right tail) both violate.


def bootstrap_mean(values, num_resamples=2000, confidence=0.95, seed=0):
    """Mean of the finite values with a percentile-bootstrap confidence interval (resampling the values).

    Args:
        values: iterable of numbers; None and non-finite ones are left out.
        num_resamples: int. Bootstrap resamples. Defaults to 2000.
        confidence: float. Coverage of the interval. Defaults to 0.95.
        seed: int. The resampling is deterministic for a given seed.

    Returns:
        dict: `n`, `mean` (None if n = 0), `low`/`high` (None if n < 2: one case gives no interval). A constant
        sample has a zero-width interval.
    """
    finite = np.array([float(v) for v in values if _finite(v)], dtype=np.float64)
    result = {"n": int(len(finite)), "mean": None, "low": None, "high": None}
    if not len(finite):
        return result
    result["mean"] = float(finite.mean())
    if len(finite) >= 2:
        rng = np.random.default_rng(seed)
        means = finite[rng.integers(0, len(finite), size=(int(num_resamples), len(finite)))].mean(axis=1)
        tail = 100 * (1 - confidence) / 2
        low, high = np.percentile(means, [tail, 100 - tail])
        # Rounding inside the resampled means can put a constant sample's bounds an ulp beside its mean.
        result["low"], result["high"] = min(float(low), result["mean"]), max(float(high), result["mean"])
    return result


def paired_bootstrap(values, reference, num_resamples=2000, confidence=0.95, seed=0):
    """`values[case] - reference[case]` over the cases both have: mean, bootstrap interval, Wilcoxon p.

    Args:
        values: dict case -> value of one model.
        reference: dict case -> value of the model it is compared with.
        num_resamples, confidence, seed: see `bootstrap_mean`.

    Returns:
        dict: `n` (paired cases), `mean`, `low`, `high` (as `bootstrap_mean` of the differences) and
        `wilcoxon_p`: two-sided p of the Wilcoxon signed-rank test (None for fewer than 2 pairs or without
        scipy; 1.0 when every difference is 0).
    """
    cases = sorted(c for c in set(values) & set(reference) if _finite(values[c]) and _finite(reference[c]))
    differences = [float(values[c]) - float(reference[c]) for c in cases]
    result = bootstrap_mean(differences, num_resamples, confidence, seed)
    result["wilcoxon_p"] = _wilcoxon_p(differences)
    return result


def _wilcoxon_p(differences):
    if len(differences) < 2:
        return None
    if not any(differences):
        return 1.0
    try:
        from scipy import stats
    except ImportError:
        return None
    return float(stats.wilcoxon(differences).pvalue)
