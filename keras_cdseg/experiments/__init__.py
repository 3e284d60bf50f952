"""The paper's ablation as one resumable experiment (`cdseg experiment ablation`).

    variants.py   the runs of Tables 2, 4 and 5 and the shared training settings
    runner.py     trains, evaluates and analyses every (seed, variant) run; skips finished ones
    slices.py     the test split's prepared slices per modality (input of the Table 3 / Fig. 2 analyses)
    stats.py      mean ± std over seeds and paired differences with t-intervals (numpy + scipy)
    report.py     RESULTS_DIR/report.md in the paper's table layout
"""
