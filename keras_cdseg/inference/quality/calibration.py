"""The calibration model: quality signals -> estimated Dice and failure probability (numpy only).

    signals --features()--> raw features --rank-normalize (ECDF of the calibration samples, centred)--> z
    estimated Dice       = sigmoid(a + w·z)    fractional-logit regression on the measured Dice
    failure probability  = sigmoid(b + v·z)    logistic regression on failure = Dice < 0.5

Both are fitted by Newton's method (IRLS) with an L2 penalty on the weights (not the intercepts), on the
calibration samples: validation cases and automatically degraded copies of them, each with its measured
Dice. Rank normalization makes the fit insensitive to each signal's scale and to outliers; a value beyond
the calibration range maps to the end of it. A feature missing for one case (e.g. the critic score of an
empty prediction) gets z = 0, the calibration median. The samples are stored with the model, so a predictor
that cannot compute some signal (no discriminator, a model kind without block statistics, no perturbation
passes) is scored by a model refitted on the signals it has, never by imputing the missing one.
"""

import numpy as np

FAILURE_DICE = 0.5
L2_PENALTY = 1.0
FEATURES = (
    "critic_score", "feature_shift", "mean_entropy", "mean_max_probability", "agreement", "volume_deviation",
    "num_components", "largest_component_fraction",
)  # fmt: skip
# What each feature is computed from (the probe's signal names): a feature is unavailable with its source.
FEATURE_SOURCES = {"volume_deviation": "organ_volume_ml", "num_components": "num_components"}


def volume_reference(volumes_ml):
    """`{"log_mean", "log_std", "min_ml", "max_ml", "num_cases"}` of reference organ volumes (mL)."""
    volumes = np.asarray([v for v in volumes_ml if v is not None and v > 0], np.float64)
    if not len(volumes):
        return None
    logs = np.log(volumes)
    return {"log_mean": float(logs.mean()), "log_std": float(max(logs.std(), 0.1)), "min_ml": float(volumes.min()),
            "max_ml": float(volumes.max()), "num_cases": int(len(volumes))}  # fmt: skip


def features(signals, reference=None):
    """Raw feature values (None where missing) of one signals dict, in `FEATURES` order as a dict."""
    out = {name: signals.get(name) for name in FEATURES}
    volume = signals.get("organ_volume_ml")
    if volume is None or reference is None:
        out["volume_deviation"] = None
    else:
        out["volume_deviation"] = abs(np.log(volume + 1.0) - reference["log_mean"]) / reference["log_std"]
    if out["num_components"] is not None:
        out["num_components"] = float(np.log1p(out["num_components"]))
    return {k: (None if v is None else float(v)) for k, v in out.items()}


def rank_normalize(values, reference):
    """Mid-rank ECDF of `values` within the sorted `reference`, centred to [-0.5, 0.5]; None -> 0."""
    reference = np.asarray(reference, np.float64)
    out = np.zeros(len(values))
    if not len(reference):
        return out
    for i, value in enumerate(values):
        if value is None or not np.isfinite(value):
            continue
        below = np.searchsorted(reference, value, side="left")
        not_above = np.searchsorted(reference, value, side="right")
        out[i] = (below + not_above) / (2.0 * len(reference)) - 0.5
    return out


def fit_logistic(z, y, l2=L2_PENALTY, iterations=100):
    """`(intercept, weights)` maximizing the (fractional) Bernoulli log-likelihood of y in [0, 1] − l2/2 |w|²."""
    z = np.asarray(z, np.float64)
    y = np.asarray(y, np.float64)
    design = np.column_stack([np.ones(len(z)), z])
    penalty = np.full(design.shape[1], float(l2))
    penalty[0] = 1e-6
    beta = np.zeros(design.shape[1])
    mean_y = np.clip(y.mean(), 1e-3, 1 - 1e-3)
    beta[0] = np.log(mean_y / (1 - mean_y))
    for _ in range(iterations):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (y - p) - penalty * beta
        hessian = design.T @ (design * (p * (1 - p) + 1e-9)[:, None]) + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return float(beta[0]), [float(w) for w in beta[1:]]


def fit_quality_model(samples, reference, feature_names=FEATURES, l2=L2_PENALTY):
    """The model dict fitted on calibration `samples` (each `{"signals": ..., "dice": ...}`).

    Features never measured in any sample are dropped. Returns `{"features", "reference_values",
    "dice": {"intercept", "weights"}, "failure": {...}, "l2", "num_samples", "num_failures"}`.
    """
    rows = [features(s["signals"], reference) for s in samples]
    names = [n for n in feature_names if any(r[n] is not None for r in rows)]
    dice = np.asarray([s["dice"] for s in samples], np.float64)
    failure = (dice < FAILURE_DICE).astype(np.float64)
    reference_values = {n: sorted(r[n] for r in rows if r[n] is not None) for n in names}
    z = np.column_stack([rank_normalize([r[n] for r in rows], reference_values[n]) for n in names]) if names \
        else np.zeros((len(rows), 0))  # fmt: skip
    dice_fit = fit_logistic(z, np.clip(dice, 0.0, 1.0), l2)
    failure_fit = fit_logistic(z, failure, l2)
    return {
        "features": names,
        "reference_values": reference_values,
        "dice": {"intercept": dice_fit[0], "weights": dice_fit[1]},
        "failure": {"intercept": failure_fit[0], "weights": failure_fit[1]},
        "l2": float(l2),
        "num_samples": int(len(samples)),
        "num_failures": int(failure.sum()),
    }


def apply_quality_model(model, signals, reference):
    """`(estimated Dice, failure probability)` of one signals dict under a fitted model dict."""
    raw = features(signals, reference)
    z = np.asarray([rank_normalize([raw[n]], model["reference_values"][n])[0] for n in model["features"]])
    dice = _sigmoid(model["dice"]["intercept"] + z @ np.asarray(model["dice"]["weights"], np.float64))
    failure = _sigmoid(model["failure"]["intercept"] + z @ np.asarray(model["failure"]["weights"], np.float64))
    return float(dice), float(failure)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))
