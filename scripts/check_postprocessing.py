"""Whether keeping each organ's largest 3D component helps, measured on the benchmark's folds (nnU-Net's rule).

    python scripts/check_postprocessing.py RESULTS_DIR [--variant method]

Each finished fold's `--variant` run predicts its own test scans once with no post-processing; every organ is
scored as predicted and after keeping its largest component (`keras_cdseg.experiments.postprocessing_check`;
kept per fold in runs/fold<k>/<variant>/fold_postprocessing.json). Writes RESULTS_DIR/postprocessing_check.json
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
    from keras_cdseg.experiments.postprocessing_check import check_postprocessing, render_postprocessing_check
    from keras_cdseg.io_utils import write_json_atomic, write_text_atomic

    try:
        record = check_postprocessing(args.results_dir, args.variant)
    except InputError as e:  # the project's rule for bad input: one line naming the file, exit code 2
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    table = render_postprocessing_check(record)
    write_json_atomic(args.results_dir / "postprocessing_check.json", record)
    write_text_atomic(args.results_dir / "postprocessing_check.md",
                      f"# Largest-component post-processing, folds {record['folds']} of {record['variant']}\n\n"
                      f"Rule: {record['rule']}.\n\n{table}")  # fmt: skip
    print(table)


if __name__ == "__main__":
    main()
