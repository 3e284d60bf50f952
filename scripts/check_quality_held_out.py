"""Checks the real-scan quality calibration on degradations it never saw (`keras_cdseg.experiments.fold_quality_check`).

    python scripts/check_quality_held_out.py RESULTS_DIR [--variant method]

Each finished fold of the benchmark's `--variant` predicts its own test scans under the HELD_OUT degradations
(measured once from the run's train/ directory, kept in runs/fold<k>/<variant>/fold_held_out.json); each sample
is scored by the estimate fitted on the other folds' calibration samples. Writes RESULTS_DIR/quality_held_out.json
and .md (atomically) and prints the table.
"""

import argparse
import sys
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="the benchmark's RESULTS_DIR (cdseg experiment cross-domain --out)")
    parser.add_argument("--variant", default="method", help="the benchmark model whose folds are used")
    args = parser.parse_args(argv)
    from keras_cdseg.errors import InputError
    from keras_cdseg.experiments.fold_quality_check import check_on_held_out, render_held_out_check
    from keras_cdseg.io_utils import write_json_atomic, write_text_atomic

    try:
        record = check_on_held_out(args.results_dir, args.variant)
    except InputError as e:  # the project's rule for bad input: one line naming the file, exit code 2
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    table = render_held_out_check(record)
    write_json_atomic(args.results_dir / "quality_held_out.json", record)
    write_text_atomic(args.results_dir / "quality_held_out.md", f"# Quality flag on held-out degradations\n\n{record['rule']}.\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
