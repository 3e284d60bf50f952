"""What averaging two trainings' probabilities buys: per fold, the repeats' models of one variant predict the
fold's test scans together (mean of their class probabilities), evaluated as the benchmark evaluates one model.

    python scripts/check_seed_ensemble.py RESULTS_DIR RESULTS_DIR [...] --variant method --out OUT.json

RESULTS_DIRs are `cdseg experiment cross-domain` directories of the same folds with different `--train-seed`
(as `cdseg experiment seeds` takes them), each holding the variant's trained runs. Writes OUT.json: per modality
and organ the mean Dice of each repeat, of the ensemble, and the ensemble minus the repeats' mean, paired by
scan; each fold's evaluation report goes to OUT's folder (`<variant>_ensemble/fold<k>/`). Not a package
feature: it measures whether one would pay for a second network per scan.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from keras_cdseg.config import to_dict
from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain import evaluate_fold, fold_data_dir, run_root
from keras_cdseg.inference.predictors import load_predictor
from keras_cdseg.io_utils import write_json_atomic


class MeanPredictor:
    """Mean class probabilities of several predictors that prepare slices alike (the first one's card)."""

    kind = "ensemble"

    def __init__(self, predictors):
        cards = {json.dumps(to_dict(p.card.data_config), sort_keys=True) for p in predictors}
        if len(cards) != 1:
            raise InputError(predictors[0].path, "the repeats prepare their inputs differently; cannot average them")
        self.predictors = predictors
        self.card = predictors[0].card

    def __call__(self, slices):
        return np.mean([predictor(slices) for predictor in self.predictors], axis=0)

    def describe(self):
        return " + ".join(predictor.describe() for predictor in self.predictors)


def organ_dice(report):
    """`{(case_id, modality, organ): dice}` of an evaluation report."""
    return {(case["case_id"], case["modality"], organ): metrics["dice"]
            for case in report["cases"] for organ, metrics in case["classes"].items()}  # fmt: skip


def read_folds(directory):
    path = directory / "folds.json"
    try:
        return [(fold["fold"], sorted(fold["test"])) for fold in json.loads(path.read_text())["folds"]]
    except (OSError, ValueError, KeyError, TypeError):
        sys.exit(f"Error: {path}: not the folds of a cross-domain results directory")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dirs", nargs="+", type=Path)
    parser.add_argument("--variant", default="method")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    if len(args.results_dirs) < 2:
        sys.exit("Error: give at least two results directories (repeats of the same folds)")
    first = args.results_dirs[0]
    folds = read_folds(first)
    for directory in args.results_dirs[1:]:
        if read_folds(directory) != folds:  # a model must never be scored on scans another repeat trained on
            sys.exit(f"Error: {directory}: other folds than {first} (repeats must share --seed)")
    singles, ensemble = [{} for _ in args.results_dirs], {}
    for fold, _ in folds:
        runs = [run_root(directory, fold, args.variant) / "train" for directory in args.results_dirs]
        missing = [str(run) for run in runs if not run.is_dir()]
        if missing:
            sys.exit(f"Error: {missing[0]}: no trained run of {args.variant!r} (fold {fold})")
        for index, directory in enumerate(args.results_dirs):
            report = json.loads((run_root(directory, fold, args.variant) / "evaluation" / "report.json").read_text())
            singles[index].update(organ_dice(report))
        out_dir = args.out.parent / f"{args.variant}_ensemble" / f"fold{fold}"
        report_file = out_dir / "report.json"
        if not report_file.is_file():
            predictor = MeanPredictor([load_predictor(run) for run in runs])
            evaluate_fold(predictor, fold_data_dir(first, fold), out_dir, model_path=runs[0])
        ensemble.update(organ_dice(json.loads(report_file.read_text())))
        print(f"fold {fold}: evaluated", file=sys.stderr, flush=True)
    summary = {}
    for modality in sorted({key[1] for key in ensemble}):
        organs = sorted({key[2] for key in ensemble if key[1] == modality})
        cases = sorted({key[0] for key in ensemble if key[1] == modality})
        rows = {}
        for organ in organs + ["mean"]:
            chosen = organs if organ == "mean" else [organ]

            def per_case(table):
                return np.array([np.mean([table[(c, modality, o)] or 0.0 for o in chosen]) for c in cases])

            repeats = [per_case(table) for table in singles]
            combined = per_case(ensemble)
            rows[organ] = {
                "repeats": [round(float(r.mean()), 4) for r in repeats],
                "ensemble": round(float(combined.mean()), 4),
                "ensemble_minus_repeats_mean": round(float((combined - np.mean(repeats, axis=0)).mean()), 4),
                "cases_better": int(np.sum(combined > np.mean(repeats, axis=0))),
            }
        summary[modality] = {"n": len(cases), "organs": rows}
    record = {"variant": args.variant, "results_dirs": [str(d) for d in args.results_dirs], "dice": summary}
    write_json_atomic(args.out, record)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
