"""report.md from a runs.json record: the paper's columns, mean ± std over seeds, paired intervals."""

from keras_cdseg.experiments.report import render_report, run_values


def result(variant, seed, overall_ct, overall_mr, status="finished"):
    def group(overall, n=3):
        scores = {"vo": overall + 1, "rvd": overall + 2, "assd": overall + 3, "rmsd": overall + 4, "mssd": overall + 5,
                  "overall": overall}  # fmt: skip
        return {"num_cases": n, "scores": scores, "metrics": {"dice": overall / 100}}

    sparsity = {g: {"overall": 0.5, "mean_over_blocks": 0.4, "per_block": {}, "num_slices": 10}
                for g in ("CT", "MR", "all")}  # fmt: skip
    return {"seed": seed, "variant": variant, "label": variant, "status": status, "train": {"steps_done": 10},
            "timings_s": {"train_s": 1.0}, "sparsity": sparsity,
            "classes": {"liver": {"CT": group(overall_ct), "MR": group(overall_mr),
                                  "all": group((overall_ct + overall_mr) / 2, 6)}}}  # fmt: skip


RECORD = {
    "status": "finished",
    "settings": {"data_dir": "/data", "settings": {"steps": 10}},
    "runs": [
        result("pre_bn_can", 0, 80.0, 70.0), result("pre_bn_can", 1, 82.0, 72.0), result("pre_bn_can", 2, 84.0, 74.0),
        result("post_bn_can", 0, 70.0, 71.0), result("post_bn_can", 1, 71.0, 71.0),
        result("post_bn_can", 2, 72.0, 74.0),
        result("ct_only", 0, 90.0, 10.0), result("mr_only", 0, 5.0, 60.0),
        {"seed": 0, "variant": "att_dcn", "label": "Att-DCN", "status": "failed", "error": "loss became nan"},
    ],
}


def test_cells_are_mean_and_sample_std_over_seeds():
    assert run_values(RECORD["runs"], "pre_bn_can", "CT", "overall") == {0: 80.0, 1: 82.0, 2: 84.0}
    report = render_report(RECORD)
    # CT overall 80, 82, 84 -> 82.0 ± 2.0 (VO = overall + 1, ...); Dice 0.820 ± 0.020; 3 seeds
    row = "| Pre-BN + CAN | 83.0 ± 2.0 | 84.0 ± 2.0 | 85.0 ± 2.0 | 86.0 ± 2.0 | 87.0 ± 2.0 | 82.0 ± 2.0 | 0.820 ± 0.020 | 3 |"
    assert row in report
    assert "| Pre-IN + CAN | — | — | — | — | — | — | — | 0 |" in report


def test_paired_differences_carry_t_intervals_and_mark_real_differences():
    report = render_report(RECORD)
    # Post-BN − Pre-BN on CT: -10, -11, -12; on MR: +1, -1, 0. Both sd 1: half width 4.303/sqrt(3) = 2.48
    assert "| Post-BN + CAN | -11.0 [-13.5, -8.5] * | +0.0 [-2.5, +2.5] | -5.5 [-7.7, -3.3] * |" in report
    # Table 4: each single-modality model on its own modality against the cross-domain model, one seed
    assert "| CT only, on CT | 91.0 | 92.0 | 93.0 | 94.0 | 95.0 | 90.0 | 0.900 | 1 |" in report
    assert "| MR only, on MR | -10.0 (n/a: 1 seed) |" in report


def test_failed_runs_and_a_missing_figure_are_stated():
    report = render_report(RECORD)
    assert "- seed 0 att_dcn: loss became nan" in report
    assert "Fig. 2 not drawn" in report
    assert "| 0 | att_dcn | failed |" in report
    figure = {"seed": 1, "path": "fig2.png", "kernels": [
        {"kernel": "down1:3", "Pre-BN": {"overlap": 0.25, "mean": {"CT": 0.1, "MR": 0.3}, "std": {}},
         "Post-BN": {"overlap": 0.75, "mean": {"CT": 0.2, "MR": 0.2}, "std": {}}}]}  # fmt: skip
    report = render_report(RECORD, figure)
    assert "![Fig. 2](fig2.png)" in report and "| down1:3 | 0.25 | 0.75 | 0.100 / 0.300 | 0.200 / 0.200 |" in report
    assert "| mean | 0.25 | 0.75 | | |" in report
