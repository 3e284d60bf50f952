"""The paper's ablation as one resumable experiment (`cdseg experiment ablation`).

    variants.py   the runs of Tables 2, 4 and 5 and the shared training settings
    runner.py     trains, evaluates and analyses every (seed, variant) run; skips finished ones
    slices.py     the test split's prepared slices per modality (input of the Table 3 / Fig. 2 analyses)
    stats.py      mean ± std over seeds and paired differences with t-intervals (numpy + scipy)
    report.py     RESULTS_DIR/report.md in the paper's table layout

`cdseg experiment cross-domain` (K-fold cross-validation of one CT + MR network against separate models):

    cross_domain_settings.py  its variants and shared settings (from a training recipe)
    folds.py                  folds by patient, stratified by modality; one dataset.json per fold
    cross_domain.py           trains and evaluates every (fold, variant) run; skips finished ones
    cross_domain_results.py   results.json: per-case rows, bootstrap means, paired comparisons (stats.py)
    cross_domain_report.py    results.md beside the published anchors
"""
