"""Checks the real-scan quality calibration on degradations it never saw (`keras_cdseg.experiments.fold_quality_check`).

    python scripts/check_quality_held_out.py RESULTS_DIR [--variant method]

Each finished fold of the benchmark's `--variant` predicts its own test scans under the HELD_OUT degradations
(measured once from the run's train/ directory, kept in runs/fold<k>/<variant>/fold_held_out.json); each sample
is scored by the estimate fitted on the other folds' calibration samples. Writes RESULTS_DIR/quality_held_out.json
and .md (atomically) and prints the table.
"""


def main(argv=None):
    from keras_cdseg.experiments.fold_check_cli import run_fold_check
    from keras_cdseg.experiments.fold_quality_check import check_on_held_out, render_held_out_check

    run_fold_check(__doc__.splitlines()[0], check_on_held_out, render_held_out_check, "quality_held_out",
                   lambda record: "Quality flag on held-out degradations", argv)  # fmt: skip


if __name__ == "__main__":
    main()
