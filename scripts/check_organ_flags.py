"""Checks the organ-level warnings on the benchmark's folds (`keras_cdseg.experiments.organ_check`).

    python scripts/check_organ_flags.py RESULTS_DIR [--variant method]

Each finished fold of `--variant` predicts its own test scans, clean and degraded (kept in
runs/fold<k>/<variant>/fold_calibration.json and fold_held_out.json; measured from the run's train/ directory
where missing); each sample's organ-level warnings are set against every organ's Dice. Writes
RESULTS_DIR/organ_flags.json and .md (atomically) and prints the table.
"""


def main(argv=None):
    from keras_cdseg.experiments.fold_check_cli import run_fold_check
    from keras_cdseg.experiments.organ_check import check_organ_flags, render_organ_check

    run_fold_check(__doc__.splitlines()[0], check_organ_flags, render_organ_check, "organ_flags",
                   lambda record: "Organ-level warnings against every organ's Dice", argv)  # fmt: skip


if __name__ == "__main__":
    main()
