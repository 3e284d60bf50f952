"""Do the organ-level checks (`inference.quality.anatomy`) catch the organs the quality estimate does not judge?

The estimate is about the liver. Each fold's model of the cross-domain benchmark predicts its own test scans,
clean and degraded (`fold_calibration`, and `fold_quality_check`'s held-out degradations where measured);
the samples measured since the organ-level checks hold every organ's Dice and the predicted organs' volumes
and centroids. Each sample's organ-level warnings are computed with the volume ranges of the **other** folds'
reference labels (the fold model's own training labels), and set against the Dice of each organ:

- an *organ failure* is an organ other than the estimate's with Dice < 0.5 (missed or mostly wrong);
  it is `caught` when its sample has an organ-level warning, or when the estimate's own organ is empty too
  (nothing the checks could compare: triage's `empty_prediction` fails such a case whatever else it holds);
- a *good sample* has every organ at Dice >= 0.8; an organ-level warning there is a false alarm unless the
  degradation made it true (`flip_1` reverses the slices under an unchanged header: `upside_down` is right).

    check_organ_flags(RESULTS_DIR) -> record (written by scripts/check_organ_flags.py)
"""

import sys
from collections import Counter
from pathlib import Path

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain import FOLDS_FILE
from keras_cdseg.experiments.fold_calibration import FOLD_FILE, fold_samples, organ_reference_volumes
from keras_cdseg.experiments.fold_quality_check import HELD_OUT_FILE
from keras_cdseg.experiments.resumable import read_json
from keras_cdseg.inference.quality.degradations import CALIBRATION, HELD_OUT

FAILURE_DICE = 0.5
GOOD_DICE = 0.8


def check_organ_flags(out_dir, variant="method", held_out=True, log=None):
    """Organ-level warnings of every measured sample against its organs' Dice (see the module docstring).

    Args:
        out_dir: the benchmark's RESULTS_DIR.
        variant: whose folds. Defaults to "method".
        held_out: bool. Also the held-out degradations' samples where a fold has them (measured if its run's
            train/ directory is there). Defaults to True.

    Returns:
        `{"variant", "folds", "rule", "by_set", "failures", "warned_good_samples"}`: `by_set` ("clean", "degraded", "all")
        counts organ failures caught and missed and good samples with and without a warning.

    Raises:
        InputError: not a benchmark directory, or no fold with organ-level results.
    """
    from keras_cdseg.inference.quality.anatomy import anatomy_warnings, organ_volume_references
    from keras_cdseg.inference.quality.estimate import organ_value_of

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    folds = [f["fold"] for f in (read_json(out_dir / FOLDS_FILE) or {}).get("folds", [])]
    if not folds:
        raise InputError(out_dir, f"not a cross-domain results directory (no {FOLDS_FILE})")
    measured, labels, kept_by_fold = {}, None, {}
    for fold in folds:
        kept = fold_samples(out_dir, fold, variant, CALIBRATION, log=log, file_name=FOLD_FILE)
        if kept is None:
            continue
        kept_by_fold[fold] = kept
        samples = list(kept["samples"])
        if held_out:
            tested = fold_samples(out_dir, fold, variant, HELD_OUT, log=log, file_name=HELD_OUT_FILE)
            samples += [s for s in (tested or {}).get("samples", []) if s["degradation"] != "none"]
        if not all("organs" in s for s in samples):
            log(f"fold {fold}: samples measured before the organ-level checks (no organs); left out")
            continue
        measured[fold], labels = samples, kept["labels"]
    if not measured:
        raise InputError(out_dir, f"no fold of {variant!r} has samples with organ-level results")
    estimate_organ = next(name for name, value in labels.items() if int(value) == organ_value_of(labels))
    reference_by_fold = {f: organ_reference_volumes(out_dir, f, kept_by_fold.get(f, {}), labels, log) for f in folds}
    rows = []
    for fold, samples in measured.items():
        references = organ_volume_references([v for f in folds if f != fold for v in reference_by_fold[f]])
        for sample in samples:
            warnings = anatomy_warnings(sample["organs"], references, skip_volume=(estimate_organ,))
            codes, reasons = [w["code"] for w in warnings], [w["reason"] for w in warnings]
            if sample["organs"][estimate_organ]["volume_ml"] <= 0:
                codes, reasons = ["empty_prediction"] + codes, [f"no {estimate_organ} voxel predicted"] + reasons
            rows.append({"fold": fold, "case_id": sample["case_id"], "degradation": sample["degradation"],
                         "organ_dice": sample["organ_dice"], "codes": codes, "reasons": reasons})  # fmt: skip
    groups = {"clean": [r for r in rows if r["degradation"] == "none"],
              "degraded": [r for r in rows if r["degradation"] != "none"], "all": rows}  # fmt: skip
    failures = [{**_row(r), "organ": organ, "dice": dice}
                for r in rows for organ, dice in r["organ_dice"].items()
                if organ != estimate_organ and dice < FAILURE_DICE]  # fmt: skip
    warned_good_samples = [_row(r) for r in rows if r["codes"] and min(r["organ_dice"].values()) >= GOOD_DICE]
    return {
        "variant": variant,
        "folds": sorted(measured),
        "rule": f"organ failure: an organ other than the {estimate_organ} with Dice < {FAILURE_DICE}, caught when "
                f"its sample has an organ-level warning or no {estimate_organ} at all (empty_prediction); good "
                f"sample: every organ at Dice >= {GOOD_DICE}; volume ranges from the other folds' reference labels",
        "by_set": {name: _summary(selected, estimate_organ) for name, selected in groups.items()},
        "failures": failures,
        "warned_good_samples": warned_good_samples,
    }


def _row(row):
    return {key: row[key] for key in ("fold", "case_id", "degradation", "codes", "reasons")}


def _summary(rows, estimate_organ):
    failing = [(r, organ) for r in rows for organ, dice in r["organ_dice"].items()
               if organ != estimate_organ and dice < FAILURE_DICE]  # fmt: skip
    good = [r for r in rows if min(r["organ_dice"].values()) >= GOOD_DICE]
    codes = Counter(code for r in rows for code in r["codes"])
    return {
        "num_samples": len(rows),
        "organ_failures": len(failing),
        "organ_failures_caught": sum(bool(r["codes"]) for r, _ in failing),
        "samples_with_organ_failure": len({id(r) for r, _ in failing}),
        "good_samples": len(good),
        "good_samples_warned": sum(bool(r["codes"]) for r in good),
        "warnings": dict(sorted(codes.items())),
    }


def render_organ_check(record):
    """A markdown table of the record (one row per set), then the organ failures and the warned good samples."""
    lines = ["| Samples | n | organ failures (Dice < 0.5) | caught | good samples (all organs ≥ 0.8) | warned | "
             "warnings |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, g in record["by_set"].items():
        warnings = ", ".join(f"{code} {n}" for code, n in g["warnings"].items()) or "—"
        lines.append(f"| {name} | {g['num_samples']} | {g['organ_failures']} | {g['organ_failures_caught']} | "
                     f"{g['good_samples']} | {g['good_samples_warned']} | {warnings} |")  # fmt: skip
    lines += ["", "| fold | scan | degradation | organ | Dice | organ-level warnings |", "|---|---|---|---|---|---|"]
    for f in record["failures"]:
        lines.append(f"| {f['fold']} | {f['case_id']} | {f['degradation']} | {f['organ']} | {f['dice']:.3f} | "
                     f"{'; '.join(f['reasons']) or '**none**'} |")  # fmt: skip
    if record["warned_good_samples"]:
        lines += ["", "Warnings on good samples (every organ at Dice ≥ 0.8; a right call where the degradation made them true, e.g. `upside_down` after `flip_1` reversed the slices):", ""]
        lines += [f"- fold {a['fold']} {a['case_id']} {a['degradation']}: {'; '.join(a['reasons'])}"
                  for a in record["warned_good_samples"]]  # fmt: skip
    return "\n".join(lines) + "\n"
