"""Does the quality flag catch real-scan failures of kinds its calibration never saw?

The bundled model's quality estimate is fitted on the benchmark's folds (`fold_calibration`): real scans,
clean and under the CALIBRATION degradations. This check asks what it does on other kinds of shift, the
way an MR sequence or a scanner it never saw would look to it: each fold's model predicts its own test scans
under the HELD_OUT degradations (gamma 0.35 and 3.0 change the contrast between tissues, ghosting, low
resolution, salt-and-pepper, saturation, a left-right flip, stronger and weaker noise, blur and bias, a
tighter crop), and each sample is scored by the estimate fitted on the **other** folds' calibration samples.

Reported per degradation and modality, against issue 18's rule for an unseen sequence: a scan either has a
liver Dice of at least 0.80 or it is flagged (verdict `review` or `fail`). `missed` counts the samples
below 0.80 that get `ok`.

    check_on_held_out(RESULTS_DIR) -> record (written to RESULTS_DIR/quality_held_out.json by the script)
"""

import sys
from pathlib import Path

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain import FOLDS_FILE
from keras_cdseg.experiments.fold_calibration import FOLD_FILE, fold_samples, score_left_out
from keras_cdseg.experiments.resumable import read_json
from keras_cdseg.inference.quality.degradations import CALIBRATION, HELD_OUT

HELD_OUT_FILE = "fold_held_out.json"
ACCEPTABLE_DICE = 0.80  # issue 18: an unseen sequence has liver Dice >= 0.80, or its scan is flagged


def check_on_held_out(out_dir, variant="method", degradations=HELD_OUT, log=None):
    """Scores every fold's test scans under `degradations` with the estimate fitted on the other folds.

    Each fold is measured once from its run's train/ directory and kept in runs/fold<k>/<variant>/
    fold_held_out.json; the calibration samples come from fold_calibration.json (measured if missing).

    Returns:
        `{"variant", "folds", "degradations", "rule", "overall", "by_degradation", "by_modality", "samples"}`.

    Raises:
        InputError: not a benchmark directory, or fewer than two folds with both kinds of samples.
    """
    from keras_cdseg.experiments.failure_detection import metrics
    from keras_cdseg.inference.quality.triage import verdict_counts

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    folds = (read_json(out_dir / FOLDS_FILE) or {}).get("folds")
    if not folds:
        raise InputError(out_dir, f"not a cross-domain results directory (no {FOLDS_FILE})")
    calibration, held_out, reference_by_fold = [], [], {}
    for fold in (f["fold"] for f in folds):
        fitted = fold_samples(out_dir, fold, variant, CALIBRATION, log=log, file_name=FOLD_FILE)
        tested = fold_samples(out_dir, fold, variant, degradations, log=log, file_name=HELD_OUT_FILE)
        if fitted is None or tested is None:
            continue
        calibration += [{**s, "fold": fold} for s in fitted["samples"]]
        held_out += [{**s, "fold": fold} for s in tested["samples"] if s["degradation"] != "none"]
        reference_by_fold[fold] = fitted["reference_volumes_ml"]
    if len(reference_by_fold) < 2:
        raise InputError(out_dir, f"needs at least two folds of {variant!r} with calibration and held-out samples "
                                  f"(found {len(reference_by_fold)})")  # fmt: skip
    modality = {row["case_id"]: row["modality"] for row in (read_json(out_dir / "results.json") or {}).get("cases", [])}
    rows = [{**row, "modality": modality.get(row["case_id"])} for row in
            score_left_out(calibration, reference_by_fold, scored=held_out)]  # fmt: skip

    def group(selected):
        below = [r for r in selected if r["dice"] < ACCEPTABLE_DICE]
        verdicts_below = verdict_counts(r["verdict"] for r in below)
        return {
            "num_samples": len(selected),
            "mean_dice": sum(r["dice"] for r in selected) / len(selected),
            f"below_{ACCEPTABLE_DICE:.2f}": len(below),
            f"verdicts_below_{ACCEPTABLE_DICE:.2f}": verdicts_below,
            "missed": verdicts_below["ok"],
            "worst_missed_dice": min((r["dice"] for r in below if r["verdict"] == "ok"), default=None),
            f"at_or_above_{ACCEPTABLE_DICE:.2f}": len(selected) - len(below),
            f"verdicts_at_or_above_{ACCEPTABLE_DICE:.2f}": verdict_counts(r["verdict"] for r in selected
                                                                          if r["dice"] >= ACCEPTABLE_DICE),  # fmt: skip
            "metrics": metrics([r["dice"] for r in selected], [r["estimated_dice"] for r in selected],
                               [r["failure_probability"] for r in selected]),  # fmt: skip
        }

    names = sorted({r["degradation"] for r in rows}, key=[d.name for d in degradations].index)
    return {
        "variant": variant,
        "folds": sorted(reference_by_fold),
        "degradations": names,
        "rule": (f"each fold's test scans under degradations the calibration never used, scored by the estimate "
                 f"fitted on the other folds' calibration samples; a sample below liver Dice {ACCEPTABLE_DICE:.2f} "
                 "should get `review` or `fail` (`missed`: it got `ok`)"),
        "overall": group(rows),
        "by_degradation": {name: group([r for r in rows if r["degradation"] == name]) for name in names},
        "by_modality": {m: group([r for r in rows if r["modality"] == m]) for m in sorted({r["modality"] for r in rows if r["modality"]})},
        "samples": rows,
    }  # fmt: skip


def render_held_out_check(record):
    """A markdown table of the record: one row per degradation, then per modality and overall."""
    key = f"{ACCEPTABLE_DICE:.2f}"
    lines = [f"| Samples | n | mean liver Dice | below {key} | of those: ok (missed) / review / fail | worst missed | "
             f"at ≥ {key}: ok / review / fail | failure AUROC | mean abs. error |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    groups = [(name, g) for name, g in record["by_degradation"].items()]
    groups += [(f"**{m}**", g) for m, g in record["by_modality"].items()] + [("**all**", record["overall"])]
    for name, g in groups:
        below, above = g[f"verdicts_below_{key}"], g[f"verdicts_at_or_above_{key}"]
        auroc, worst = g["metrics"]["auroc_failure"], g["worst_missed_dice"]
        lines.append(f"| {name} | {g['num_samples']} | {g['mean_dice']:.3f} | {g[f'below_{key}']} | "
                     f"{below['ok']} / {below['review']} / {below['fail']} | {'—' if worst is None else f'{worst:.3f}'} | "
                     f"{above['ok']} / {above['review']} / {above['fail']} | "
                     f"{'n/a' if auroc is None else f'{auroc:.3f}'} | {g['metrics']['mae_dice']:.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"
