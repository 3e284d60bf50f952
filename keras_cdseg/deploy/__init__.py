"""`cdseg predict` on scans straight from scanners: input discovery, prediction runs, statistics and previews.

- `inputs`: NIfTI files, folders of them, or a DICOM series folder -> `InputCase`s -> `Volume`s.
- `predict`: `predict_cases(...)` writes label maps on each input's exact grid plus `statistics.json`,
  all or nothing.
- `preview`: a three-plane PNG with the predicted contours.

Model export and loading live in `keras_cdseg.export` and `keras_cdseg.predictors`; the volume inference core
in `keras_cdseg.inference`.
"""
