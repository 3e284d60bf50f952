"""Per-scan quality estimate: signals on the generator's own forward pass, a calibration model fitted at
training time, and the `quality` record of `cdseg predict` (see docs/quality.md).

    signals.py       QualityProbe (critic, feature-statistics shift, confidence, components), perturbations
    degradations.py  automatic corruptions for calibration (CALIBRATION) and testing (HELD_OUT)
    calibration.py   rank-normalized signals -> estimated Dice, failure probability (numpy)
    estimate.py      QualityEstimator (record + flags), quality.json / discriminator.keras assets
    assess.py        one volume with its signals; calibrate_generator, calibrate_run
"""
