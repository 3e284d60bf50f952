"""Does keeping each organ's largest 3D component help? nnU-Net's cross-validated choice, on the benchmark's folds.

The method keeps every single-body organ to its largest 26-connected component (the paper does it for the
liver). nnU-Net does not assume that: it applies the step to a class only when it does not lower the class's
mean Dice over the cross-validation. This module makes that measurement on `cdseg experiment cross-domain`'s
folds. Every finished fold's `variant` run predicts its own test scans once with no post-processing
(`cdseg predict`'s path), and each organ is scored as predicted and after the step. Organs can be scored from
one post-processed map: removing one class's islands sets them to background and leaves every other class's
voxels as they were.

Each fold is measured once from its run's train/ directory and kept in runs/fold<k>/<variant>/
FOLD_POSTPROCESSING_FILE (committed with result.json), so later checkouts pool it without the checkpoints. The
file names the prediction path (`label_restoration`); one made by another path is measured again.
"""

import sys
from pathlib import Path

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain import FOLDS_FILE
from keras_cdseg.experiments.fold_calibration import kept_or_measured
from keras_cdseg.experiments.resumable import read_json
from keras_cdseg.experiments.stats import bootstrap_mean, paired_bootstrap

FOLD_POSTPROCESSING_FILE = "fold_postprocessing.json"
STEPS = ("as_predicted", "largest_component")
SCORES = ("dice", "assd_mm", "mssd_mm")
RULE = ("Rule (nnU-Net's): keep an organ's largest component when that does not lower its mean Dice over every "
        "cross-validation scan (CT and MR pooled)")  # fmt: skip


def check_postprocessing(out_dir, variant="method", log=None):
    """Pools every finished fold's scores with and without the largest-component step; one verdict per organ.

    Args:
        out_dir: the benchmark's RESULTS_DIR (`cdseg experiment cross-domain --out`).
        variant: which benchmark model's folds to use. Defaults to "method".
        log: callable(str) for progress; defaults to stderr.

    Returns:
        `{"variant", "folds", "rule", "organs": {organ: {"keep_largest_component", "by_modality": {"all" | CT |
        MR: {"n", "changed", STEP: {score: bootstrap mean}, "dice_difference": paired bootstrap}}}}, "cases"}`.
        `changed` counts the scans whose prediction the step altered.

    Raises:
        InputError: not a benchmark directory, or no fold of `variant` measured or measurable.
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    folds = (read_json(out_dir / FOLDS_FILE) or {}).get("folds")
    if not folds:
        raise InputError(out_dir, f"not a cross-domain results directory (no {FOLDS_FILE})")
    cases, used = [], []
    for fold in (f["fold"] for f in folds):
        kept = fold_postprocessing(out_dir, fold, variant, log)
        if kept is not None:
            cases += [{**case, "fold": fold} for case in kept["cases"]]
            used.append(fold)
    if not used:
        raise InputError(out_dir, f"no fold of {variant!r} has a {FOLD_POSTPROCESSING_FILE} or a finished run with "
                                  "its train/ directory")  # fmt: skip
    organs = list(cases[0]["organs"])
    modalities = ["all", *sorted({case["modality"] for case in cases if case["modality"]})]
    summary = {}
    for organ in organs:
        by_modality = {m: _compare([c for c in cases if m == "all" or c["modality"] == m], organ) for m in modalities}
        pooled = by_modality["all"]
        keep = pooled["largest_component"]["dice"]["mean"] >= pooled["as_predicted"]["dice"]["mean"]
        summary[organ] = {"keep_largest_component": bool(keep), "by_modality": by_modality}
    return {"variant": variant, "folds": used, "rule": RULE, "organs": summary, "cases": cases}


def _compare(cases, organ):
    scores = {step: {score: bootstrap_mean([c["organs"][organ][step][score] for c in cases]) for score in SCORES}
              for step in STEPS}  # fmt: skip
    dice = {step: {c["case_id"]: c["organs"][organ][step]["dice"] for c in cases} for step in STEPS}
    return {"n": len(cases), "changed": sum(c["organs"][organ]["changed"] for c in cases), **scores,
            "dice_difference": paired_bootstrap(dice["largest_component"], dice["as_predicted"])}  # fmt: skip


def fold_postprocessing(out_dir, fold, variant="method", log=None):
    """One fold's per-scan scores with and without the step: its kept file, or measured now and kept.

    Returns:
        `{"variant", "label_restoration", "organs", "cases": [{"case_id", "modality", "organs": {organ: {"changed", STEP: {score}}}}]}`,
        or None when the fold has neither the file nor a finished run with its train/ directory.
    """
    from keras_cdseg.inference.volume import LABEL_RESTORATION

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    settings = {"variant": variant, "label_restoration": LABEL_RESTORATION}
    return kept_or_measured(out_dir, fold, FOLD_POSTPROCESSING_FILE, settings, log,
                            lambda train_dir, fold_dir: _measure_fold(train_dir, fold_dir, log, f"fold {fold}"))  # fmt: skip


def _measure_fold(train_dir, fold_dir, log, prefix):
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.evaluation.cases import evaluate_case
    from keras_cdseg.evaluation.model_cases import iter_model_case_pairs, model_postprocessing_classes
    from keras_cdseg.inference.predictors import load_predictor

    predictor = load_predictor(train_dir)
    index = load_dataset(fold_dir)
    foreground = {name: value for name, value in index.labels.items() if int(value) != 0}
    organs = model_postprocessing_classes(predictor.card, foreground)
    log(f"{prefix}: {len(index.test)} test scans, largest component of {', '.join(organs)} on and off")
    cases = []
    pairs = iter_model_case_pairs(predictor, index.test, index.labels, with_images=False, quality=False)
    for pair in pairs:
        scored = {step: evaluate_case(pair, foreground, largest_component_classes=chosen)["classes"]
                  for step, chosen in zip(STEPS, ((), organs))}  # fmt: skip
        cases.append({"case_id": pair.case_id, "modality": pair.modality, "organs": {
            organ: {"changed": scored["largest_component"][organ].get("num_components_pred_before", 1) > 1,
                    **{step: {score: scored[step][organ][score] for score in SCORES} for step in STEPS}}
            for organ in organs}})  # fmt: skip
        log(f"{prefix}: {pair.case_id} " + ", ".join(
            f"{organ} {cases[-1]['organs'][organ]['as_predicted']['dice']:.3f} -> "
            f"{cases[-1]['organs'][organ]['largest_component']['dice']:.3f}" for organ in organs))  # fmt: skip
    return {"organs": list(organs), "cases": cases}


def render_postprocessing_check(record):
    """The markdown table: per organ and modality, Dice / ASSD / MSSD as predicted and after the step."""

    def fmt(value, digits=3):
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = ["| organ | scans | changed | Dice as predicted | Dice, largest component | difference [95 % CI] | "
             "ASSD mm (before → after) | MSSD mm (before → after) | keep the step |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for organ, entry in record["organs"].items():
        for modality, row in entry["by_modality"].items():
            before, after, diff = row["as_predicted"], row["largest_component"], row["dice_difference"]
            lines.append(
                f"| {organ} | {modality} {row['n']} | {row['changed']} | {fmt(before['dice']['mean'])} | "
                f"{fmt(after['dice']['mean'])} | {diff['mean']:+.4f} [{fmt(diff['low'], 4)}, {fmt(diff['high'], 4)}] | "
                f"{fmt(before['assd_mm']['mean'], 2)} → {fmt(after['assd_mm']['mean'], 2)} | "
                f"{fmt(before['mssd_mm']['mean'], 1)} → {fmt(after['mssd_mm']['mean'], 1)} | "
                f"{('yes' if entry['keep_largest_component'] else '**no**') if modality == 'all' else ''} |"
            )  # fmt: skip
    return "\n".join(lines) + "\n"
