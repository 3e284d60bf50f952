"""The verdict a reader acts on: `ok`, `review` or `fail` per case, from the quality estimate.

    warnings (each makes the verdict at least its level; the reason is printed on the case's console line)
      fail    not_a_scan            the input has few distinct integer values: a label map, not a scan
      fail    empty_prediction      no organ voxel predicted
      fail    likely_failure        failure probability >= FAIL_PROBABILITY (P(Dice < 0.5))
      fail    implausible_volume    organ volume below half the smallest / above twice the largest reference
      review  low_estimated_dice    estimated Dice below REVIEW_DICE
      review  unusual_volume        organ volume outside the reference range (smallest..largest)
      review  no_calibration        the model has no calibration (quality.json): nothing says the case is ok
    and the organ-level warnings of `anatomy.py` (organ_not_found, implausible_organ_volume, organs_on_wrong_side,
    upside_down: review; mirrored_anatomy: fail), passed in by the estimator.
    notes (never change the verdict): critic_unavailable, feature_shift_unavailable, agreement_unavailable

REVIEW_DICE is fixed, not fitted: a liver below Dice 0.8 has contours a reader sees are wrong, and the +59 %
over-segmented real CT of issue 19 (Dice 0.687, accurately estimated at 0.673, failure probability below 0.5,
a volume inside the reference range) passed without a warning. See docs/quality.md ("Verdict").
"""

import numpy as np

REVIEW_DICE = 0.80
FAIL_PROBABILITY = 0.5
LABEL_MAP_MAX_VALUES = 128
VERDICTS = ("ok", "review", "fail")
FAIL_WARNINGS = ("not_a_scan", "empty_prediction", "likely_failure", "implausible_volume")
REVIEW_WARNINGS = ("low_estimated_dice", "unusual_volume", "no_calibration")
_SAMPLE_VOXELS = 1 << 20
_MAX_COUNTED_VALUES = 1024


def count_intensity_levels(data, max_voxels=_SAMPLE_VOXELS):
    """`(distinct values, all non-negative integers)` of an image, on a regular sample of at most `max_voxels`.

    The count stops mattering above LABEL_MAP_MAX_VALUES, so it is capped at 1024; a sample keeps it cheap
    (about 0.05 s) on a 512 × 512 × 300 scan, and a scan with hundreds of levels shows them in any sample.
    """
    flat = np.asarray(data).reshape(-1)
    sample = flat[:: max(1, flat.size // max_voxels)]
    if not sample.size:
        return 0, True
    values = np.unique(sample)
    label_like = bool(values[0] >= 0 and (np.issubdtype(values.dtype, np.integer) or np.all(np.mod(values, 1) == 0)))
    return int(min(len(values), _MAX_COUNTED_VALUES)), label_like


def looks_like_label_map(distinct_values, nonnegative_integers):
    """True for an image of at most LABEL_MAP_MAX_VALUES distinct non-negative integers (a label map, a mask).

    Scans have hundreds to thousands of levels: the real CT in HU 1024+, CHAOS T2 MR about 1000, even the
    8-bit-windowed BTCV CT 256; label maps have one value per structure (TotalSegmentator's largest map 118,
    its map of the real CT 42). Requiring non-negative values keeps a nearly noise-free HU phantom a scan.
    """
    return distinct_values is not None and bool(nonnegative_integers) and distinct_values <= LABEL_MAP_MAX_VALUES


def judge(estimated_dice, failure_probability, signals, reference=None, calibrated=True, organ_name="organ",
          more_warnings=()):
    """`(verdict, warnings)`: warnings are `{"code", "level", "reason"}` dicts, most severe first.

    Args:
        estimated_dice, failure_probability: float or None (None without calibration).
        signals: the case's signals (`organ_volume_ml`, `input_distinct_values`, `input_nonnegative_integers`).
        reference: the calibration's volume reference (`min_ml`, `max_ml`) or None.
        calibrated: bool. False when the model has no quality.json.
        organ_name: str. Names the organ in the reasons.
        more_warnings: warnings found elsewhere (`anatomy.anatomy_warnings`), judged with these.
    """
    warnings = []

    def warn(code, reason):
        warnings.append({"code": code, "level": "fail" if code in FAIL_WARNINGS else "review", "reason": reason})

    levels = signals.get("input_distinct_values")
    if looks_like_label_map(levels, signals.get("input_nonnegative_integers")):
        warn("not_a_scan", f"the input has only {levels} distinct integer values: a label map, not a scan")
    volume = signals.get("organ_volume_ml")
    if volume is not None and volume <= 0:
        warn("empty_prediction", f"no {organ_name} voxel predicted")
    if failure_probability is not None and failure_probability >= FAIL_PROBABILITY:
        warn("likely_failure", f"failure probability {failure_probability:.2f}")
    if volume and reference:
        low, high = reference["min_ml"], reference["max_ml"]
        if not low / 2 <= volume <= high * 2:
            warn("implausible_volume", f"{organ_name} {volume:.0f} mL is implausible (reference {low:.0f}-{high:.0f} mL)")
        elif not low <= volume <= high:
            warn("unusual_volume", f"{organ_name} {volume:.0f} mL is outside the reference {low:.0f}-{high:.0f} mL")
    if estimated_dice is not None and estimated_dice < REVIEW_DICE:
        warn("low_estimated_dice", f"estimated Dice below {REVIEW_DICE:.2f}")
    if not calibrated:
        warn("no_calibration", "the model has no quality calibration")
    warnings.extend(more_warnings)
    warnings.sort(key=lambda w: w["level"] != "fail")
    verdict = warnings[0]["level"] if warnings else "ok"
    return verdict, warnings


def signed_volume_deviation(volume_ml, reference):
    """z-score of log(volume + 1 mL) against the reference volumes; > 0 larger than typical. None if unknown.

    The calibration model uses its absolute value (`calibration.features`); the sign tells a reader which way.
    """
    if volume_ml is None or not reference:
        return None
    return float((np.log(volume_ml + 1.0) - reference["log_mean"]) / reference["log_std"])


def typical_ranges(calibration):
    """`{signal: [low, high]}` over the calibration's clean validation cases (no degradation), for a reader.

    These are the values this model produces on scans like its validation data; a value far outside says
    the scan is unlike them (not by itself that the segmentation is wrong). Empty without calibration.
    """
    if not calibration:
        return {}
    clean = [s["signals"] for s in calibration.get("samples", []) if s.get("degradation") == "none"]
    reference = calibration.get("volume_reference")
    ranges = {}
    for name in sorted({k for signals in clean for k, v in signals.items() if _is_number(v)}):
        values = [float(s[name]) for s in clean if _is_number(s.get(name))]
        if values:
            ranges[name] = [round(min(values), 4), round(max(values), 4)]
    deviations = [signed_volume_deviation(s.get("organ_volume_ml"), reference) for s in clean]
    deviations = [d for d in deviations if d is not None]
    if deviations:
        ranges["volume_deviation"] = [round(min(deviations), 4), round(max(deviations), 4)]
    if clean:
        dice = [float(s["dice"]) for s in calibration["samples"] if s.get("degradation") == "none"]
        ranges["measured_dice"] = [round(min(dice), 4), round(max(dice), 4)]
    return ranges


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_case_line(stats):
    """The case's console line of `cdseg predict`: organs with volumes, then the verdict and its reasons.

        ct_abdomen  liver 1043 mL, spleen 180 mL  (0.8 s)  ok (est. Dice 0.91)
        ct_abdomen  liver 1656 mL  (0.8 s)  review (est. Dice 0.67): estimated Dice below 0.80
    """
    organs = ", ".join(f"{name} {c['volume_ml']:.0f} mL" for name, c in stats.get("classes", {}).items())
    parts = [stats["case_id"], organs or "no classes"]
    if "seconds" in stats and "total" in stats["seconds"]:
        parts.append(f"({stats['seconds']['total']:.1f} s)")
    quality = stats.get("quality")
    if quality and quality.get("verdict"):
        estimate = quality.get("estimated_dice")
        verdict = quality["verdict"] + (f" (est. Dice {estimate:.2f})" if estimate is not None else "")
        reasons = "; ".join(w["reason"] for w in quality.get("warnings", []))
        parts.append(f"{verdict}: {reasons}" if reasons else verdict)
    return "  ".join(parts)


def verdict_at_least(verdict, level):
    """True when `verdict` is `level` or worse (`ok` < `review` < `fail`)."""
    return VERDICTS.index(verdict) >= VERDICTS.index(level)


def verdict_counts(verdicts):
    """`{"ok": n, "review": n, "fail": n}` of an iterable of verdicts."""
    verdicts = list(verdicts)
    return {v: sum(1 for x in verdicts if x == v) for v in VERDICTS}


if __name__ == "__main__":  # python -m keras_cdseg.inference.quality.triage RUN/quality.json
    import sys

    from keras_cdseg.inference.quality.estimate import read_calibration

    for path in sys.argv[1:]:
        print(path)
        for name, (low, high) in typical_ranges(read_calibration(path)).items():
            print(f"  {name:28s} {low:10.4g} .. {high:.4g}")
