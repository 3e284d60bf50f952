"""Inference on any model kind: volume inference, predictors and post-processing.

- `volume`: `predict_volume` / `segment_volume` prepare, run and restore a whole scan, slab by slab.
- `predictors`: one `Predictor` over a run directory, `.keras`, SavedModel, `saved_models/` root or `.tflite`.
- `postprocessing`: `keep_largest_component`.

Nothing here imports the training package: the run-directory contract lives in `keras_cdseg.run_dir`.
The volume functions are re-exported so `from keras_cdseg.inference import predict_volume` keeps working.
"""

from keras_cdseg.inference.volume import (  # noqa: F401
    PROBABILITY_SCALE,
    VolumePrediction,
    iter_batches,
    iter_volume_batches,
    keras_predictor,
    predict_prepared,
    predict_volume,
    segment_prepared,
    segment_volume,
)
