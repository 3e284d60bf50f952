"""Statistics over seeds: mean ± std and the paired difference to the reference with a t-interval.

Seeds are the unit of replication: one value per seed (the mean over the test cases of that run). Two
variants trained with the same seed share the train/validation split, initial-weight seed and data order,
so their difference is paired by seed, which removes the seed's own effect from the comparison.
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
