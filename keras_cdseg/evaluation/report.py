"""Evaluation reports: `report.json`, `per_case.csv`, `report.md` and `overlays/`, written atomically.

`run_evaluation` builds the whole report directory under a temporary name and renames it into place, so a
report directory either is complete or does not exist.
"""

import csv
import datetime
import io
import math
import platform
from pathlib import Path

import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.evaluation.aggregate import summarize
from keras_cdseg.evaluation.cases import LARGEST_COMPONENT_CONNECTIVITY, check_labels, evaluate_cases
from keras_cdseg.evaluation.markdown import render_markdown
from keras_cdseg.io_utils import atomic_dir, write_json_atomic, write_text_atomic
from keras_cdseg.metrics import METRIC_KEYS
from keras_cdseg.metrics.scores import get_scheme

REPORT_FORMAT = "keras_cdseg.evaluation.report/1"
BORDER_CONVENTION = "mask XOR binary_erosion(mask, 6-connected face element, border_value=1) (CHAOS)"
COUNT_KEYS = ("num_voxels_gt", "num_voxels_pred", "num_border_gt", "num_border_pred", "num_components_pred")


def run_evaluation(
    pairs,
    labels,
    out_dir,
    scoring="chaos",
    largest_component_classes=(),
    overlays=True,
    num_cases=None,
    settings=None,
    progress=True,
):
    """Evaluates `pairs` and writes the report directory `out_dir` atomically.

    Args:
        pairs: iterable of `CasePair` (may be a lazy generator).
        labels: dict, class name -> label value.
        out_dir: path of the report directory; must not exist yet.
        scoring: "chaos" or "sliver07".
        largest_component_classes: class names post-processed to their largest component (see
            `evaluate_case`).
        overlays: bool. Write `overlays/<case_id>.png`. Defaults to True.
        num_cases: int or None. Total for the progress line.
        settings: dict or None. Extra settings recorded in `report.json` (e.g. input directories).
        progress: bool. Progress line on stderr.

    Returns:
        The report dict (as written to `report.json`, before JSON encoding of non-finite values).

    Raises:
        InputError: `out_dir` exists, or any case is invalid (then nothing is written).
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise InputError(out_dir, "report directory already exists; choose another --out or remove it")
    classes = check_labels(labels)
    largest_component_classes = tuple(n for n in largest_component_classes if n in classes)
    with atomic_dir(out_dir) as tmp:
        results = evaluate_cases(
            pairs,
            classes,
            scoring=scoring,
            largest_component_classes=largest_component_classes,
            overlay_dir=Path(tmp) / "overlays" if overlays else None,
            num_cases=num_cases,
            progress=progress,
        )
        if not results:
            raise InputError("cases", "nothing to evaluate: no case pairs were given")
        all_settings = {
            "labels": classes,
            "scoring": scoring,
            "score_thresholds": _thresholds(scoring),
            "largest_component_classes": list(largest_component_classes),
            "largest_component_connectivity": LARGEST_COMPONENT_CONNECTIVITY,
            "border_convention": BORDER_CONVENTION,
            "hd95": "max of the two directed 95th percentiles (numpy linear interpolation)",
            "std": "population standard deviation (ddof=0)",
            **(settings or {}),
        }
        report = build_report(results, classes, all_settings)
        write_report_files(report, tmp)
    return report


def build_report(case_results, labels, settings):
    """The report dict: format, creation time, versions, settings, summary and per-case results."""
    return {
        "format": REPORT_FORMAT,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "settings": settings,
        "num_cases": len(case_results),
        "summary": summarize(case_results, list(labels)),
        "cases": case_results,
    }


def write_report_files(report, out_dir):
    """Writes `report.json`, `per_case.csv` and `report.md` into `out_dir`, each atomically."""
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "report.json", to_json_safe(report))
    write_text_atomic(out_dir / "per_case.csv", render_csv(report))
    write_text_atomic(out_dir / "report.md", render_markdown(report))


def to_json_safe(value):
    """A copy of `value` that is valid JSON (no NaN/Infinity tokens), with non-finite numbers kept explicit.

    In a dict, a NaN/inf value becomes null and a sibling `"nonfinite"` dict records what it was, e.g.
    `{"assd_mm": null, ..., "nonfinite": {"assd_mm": "inf"}}`. In a list, such an item becomes the string
    "inf", "-inf" or "nan". numpy scalars become Python numbers.
    """
    if isinstance(value, dict):
        safe, nonfinite = {}, {}
        for key, item in value.items():
            number = _as_float(item)
            if number is not None and not math.isfinite(number):
                safe[key] = None
                nonfinite[key] = _nonfinite_name(number)
            else:
                safe[key] = to_json_safe(item)
        if nonfinite:
            safe["nonfinite"] = nonfinite
        return safe
    if isinstance(value, (list, tuple)):
        return [_nonfinite_name(x) if _is_nonfinite(x) else to_json_safe(x) for x in value]
    number = _as_float(value)
    if number is not None:
        return int(value) if _is_integer(value) else number
    return value


def render_csv(report):
    """One row per case and class: metrics (units in the headers), counts, scores, flags."""
    score_keys = _score_keys(report)
    header = ["case_id", "modality", "class", "label_value", *METRIC_KEYS, *COUNT_KEYS]
    header += [f"score_{k}" for k in score_keys] + ["flags"]
    quality = any("quality" in case for case in report["cases"])  # model-based runs: the model's own estimate
    if quality:
        header += ["estimated_dice", "failure_probability", "quality_flags"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for case in report["cases"]:
        for class_name, metrics in case["classes"].items():
            row = [case["case_id"], case.get("modality") or "", class_name, metrics["label_value"]]
            row += [_csv_number(metrics[k]) for k in METRIC_KEYS] + [metrics[k] for k in COUNT_KEYS]
            row += [_csv_number(metrics["scores"][k]) for k in score_keys] + [";".join(metrics["flags"])]
            if quality:
                estimate = case.get("quality") or {}
                row += ["" if estimate.get(k) is None else _csv_number(estimate[k])
                        for k in ("estimated_dice", "failure_probability")] + [";".join(estimate.get("flags", []))]
            writer.writerow(row)
    return buffer.getvalue()


def _score_keys(report):
    for case in report["cases"]:
        for metrics in case["classes"].values():
            return list(metrics["scores"])
    return []


def _csv_number(value):
    # repr keeps full precision; inf/nan are written as "inf"/"nan", which csv readers and pandas parse.
    return repr(float(value))


def _thresholds(scoring):
    scheme = get_scheme(scoring)
    thresholds = {name: {"metric": key, "score_0_at": limit} for name, (key, limit) in scheme.zero_at.items()}
    if scoring == "chaos":
        thresholds["dice"] = {"metric": "dice", "rule": "0 below 0.8, else 100 x Dice"}
        thresholds["vo"] = {"metric": "vo_percent", "rule": "score = VO"}
    thresholds["overall"] = {"mean_of": list(scheme.overall_keys)}
    for name, keys in scheme.extra_overall.items():
        thresholds[name] = {"mean_of": list(keys)}
    return thresholds


def _versions():
    from importlib import metadata

    import keras_cdseg

    versions = {"keras_cdseg": keras_cdseg.__version__, "python": platform.python_version()}
    for distribution in ("numpy", "scipy", "nibabel", "pillow"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions


def _as_float(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_nonfinite(value):
    number = _as_float(value)
    return number is not None and not math.isfinite(number)


def _nonfinite_name(number):
    return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")
