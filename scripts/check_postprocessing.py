"""Whether keeping each organ's largest 3D component helps, measured on the benchmark's folds (nnU-Net's rule).

    python scripts/check_postprocessing.py RESULTS_DIR [--variant method]

Each finished fold's `--variant` run predicts its own test scans once with no post-processing; every organ is
scored as predicted and after keeping its largest component (`keras_cdseg.experiments.postprocessing_check`;
kept per fold in runs/fold<k>/<variant>/fold_postprocessing.json). Writes RESULTS_DIR/postprocessing_check.json
and .md (atomically) and prints the table.
"""


def main(argv=None):
    from keras_cdseg.experiments.fold_check_cli import run_fold_check
    from keras_cdseg.experiments.postprocessing_check import check_postprocessing, render_postprocessing_check

    run_fold_check(__doc__.splitlines()[0], check_postprocessing, render_postprocessing_check, "postprocessing_check",
                   lambda record: f"Largest-component post-processing, folds {record['folds']} of {record['variant']}",
                   argv)  # fmt: skip


if __name__ == "__main__":
    main()
