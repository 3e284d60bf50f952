"""Summary statistics of per-case results, per class and per modality group.

Every case counts: a non-finite value (one empty mask gives infinite distances) makes the plain `mean`
infinite or NaN instead of disappearing, and `num_nonfinite` says how many cases did that. Finite-only
statistics are reported beside it under explicit names (`mean_finite`, ...). Scores are always finite (a
failed case scores 0), so score means are always usable.
"""

import collections
import warnings

import numpy as np

from keras_cdseg.metrics import METRIC_KEYS

ALL_GROUP = "all"
UNKNOWN_MODALITY = "unknown"


def group_names(case_results):
    """`["all"]` plus the sorted modalities when any case has one (cases without one go to "unknown")."""
    modalities = {r.get("modality") for r in case_results}
    if modalities <= {None}:
        return [ALL_GROUP]
    return [ALL_GROUP] + sorted(m if m is not None else UNKNOWN_MODALITY for m in modalities)


def describe(values):
    """Statistics of a list of floats; `std` is the population standard deviation (ddof=0).

    Returns:
        A dict: `mean`, `std`, `median`, `min`, `max` over all values (non-finite values propagate),
        `num_nonfinite`, and `mean_finite`, `std_finite`, `median_finite` over the finite values only
        (NaN when there are none). An empty list gives NaN statistics and zero counts.
    """
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "mean": _stat(np.mean, array),
            "std": _stat(np.std, array),
            "median": _stat(np.median, array),
            "min": _stat(np.min, array),
            "max": _stat(np.max, array),
            "num_nonfinite": int(array.size - finite.size),
            "mean_finite": _stat(np.mean, finite),
            "std_finite": _stat(np.std, finite),
            "median_finite": _stat(np.median, finite),
        }


def _stat(fn, array):
    if array.size == 0:
        return float("nan")
    return float(fn(array))


def summarize(case_results, class_names):
    """Per class and group: case count, statistics of every metric and score, and flag counts.

    Args:
        case_results: list of `evaluate_case` results.
        class_names: iterable of class names, in report order.

    Returns:
        `{class_name: {group: {"num_cases", "metrics": {key: describe(...)}, "scores": {key: describe(...)},
        "flags": {flag: count}}}}` with groups from `group_names`.
    """
    groups = group_names(case_results)
    summary = {}
    for class_name in class_names:
        summary[class_name] = {}
        for group in groups:
            members = [
                r["classes"][class_name]
                for r in case_results
                if class_name in r["classes"] and _in_group(r, group)
            ]
            score_keys = list(members[0]["scores"]) if members else []
            summary[class_name][group] = {
                "num_cases": len(members),
                "metrics": {key: describe([m[key] for m in members]) for key in METRIC_KEYS},
                "scores": {key: describe([m["scores"][key] for m in members]) for key in score_keys},
                "flags": dict(collections.Counter(flag for m in members for flag in m["flags"])),
            }
    return summary


def _in_group(result, group):
    if group == ALL_GROUP:
        return True
    return (result.get("modality") or UNKNOWN_MODALITY) == group
