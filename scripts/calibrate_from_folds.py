"""Calibrates a model's per-scan quality estimate on the cross-domain benchmark's held-out folds.

    python scripts/calibrate_from_folds.py RESULTS_DIR --out RUN/quality.json [--variant method] [--perturbations]

For a model trained on every labelled scan (the bundled model, scripts/train_bundled_model.sh), which has no
held-out scan of its own: each finished fold of the benchmark's `--variant` runs (same recipe) predicts its
own test scans, clean and under every calibration degradation, and the pooled signals and Dice are fitted
into RUN/quality.json (`keras_cdseg.experiments.fold_calibration`). Each fold is measured once, from its run's
train/ directory, and kept in runs/fold<k>/<variant>/fold_calibration.json, which later checkouts (without
the train/ directories) pool. Written atomically; the record names the folds it used.
"""

import argparse
import sys
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="the benchmark's RESULTS_DIR (cdseg experiment cross-domain --out)")
    parser.add_argument("--out", type=Path, required=True, help="quality.json to write (e.g. RUN/quality.json)")
    parser.add_argument("--variant", default="method", help="the benchmark model whose folds are used")
    parser.add_argument("--perturbations", action="store_true",
                        help="also measure agreement under perturbation (3 more passes per sample; off as in "
                             "cdseg predict, and as the benchmark keeps its fold samples)")  # fmt: skip
    args = parser.parse_args(argv)
    from keras_cdseg.errors import InputError
    from keras_cdseg.experiments.fold_calibration import calibrate_from_folds
    from keras_cdseg.io_utils import write_json_atomic

    try:
        record = calibrate_from_folds(args.results_dir, args.variant, perturbations=args.perturbations)
    except InputError as e:  # the project's rule for bad input: one line naming the file, exit code 2
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    write_json_atomic(args.out, record)
    print(f"Wrote {args.out}: {record['num_cases']} scans of folds {record['source']['folds']}, "
          f"{record['model']['num_samples']} samples")


if __name__ == "__main__":
    main()
