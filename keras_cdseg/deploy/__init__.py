"""`cdseg predict` on scans straight from scanners: input discovery, prediction runs, statistics and previews.

- `inputs`: NIfTI files, folders of them, or a DICOM series folder -> `InputCase`s -> `Volume`s.
- `predict`: `predict_cases(...)` writes label maps on each input's exact grid plus `statistics.json`,
  all or nothing.
- `preview`: a three-plane PNG with the predicted contours.

- `dicom_seg`: the label map as a binary DICOM Segmentation of its source series (`--dicom-seg`).

- `export`: SavedModel (TF Serving layout), model.json and TFLite; `volume_signature`: the SavedModel's
  `segment_volume` signature (preprocessing, network and restoration in the graph); `serving_client`: TF
  Serving clients (prepared slices over REST; raw volumes over REST or gRPC).

Model loading (`keras_cdseg.inference.predictors`) and the volume inference core (`keras_cdseg.inference.volume`)
live in `keras_cdseg.inference`; nothing here or there imports the training package.
"""
