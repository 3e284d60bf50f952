"""A hand-made quality calibration the quality tests share (no model is trained for it)."""

import numpy as np

from keras_cdseg.inference.quality.calibration import fit_quality_model, volume_reference


def hand_made_calibration(volume_ml):
    """Confident predictions of a typical volume (around `volume_ml`) succeed; unsure or huge ones fail.

    40 samples of 20 cases, every second one degraded (noise), with Dice drawn in [0.85, 1] or [0, 0.3].
    """
    rng = np.random.default_rng(0)
    samples = []
    for i in range(40):
        good = i % 2 == 0
        signals = {"mean_entropy": rng.uniform(0.0, 0.2) if good else rng.uniform(0.3, 1.0),
                   "organ_volume_ml": volume_ml * (rng.uniform(0.9, 1.1) if good else rng.uniform(2, 5))}  # fmt: skip
        samples.append({"case_id": f"c{i // 2}", "degradation": "none" if good else "noise_0.4", "signals": signals,
                        "dice": rng.uniform(0.85, 1.0) if good else rng.uniform(0.0, 0.3)})  # fmt: skip
    reference = volume_reference([volume_ml * 0.9, volume_ml, volume_ml * 1.1])
    return {"organ": {"name": "liver", "value": 1}, "volume_reference": reference, "samples": samples,
            "model": fit_quality_model(samples, reference)}  # fmt: skip
