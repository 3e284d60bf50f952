"""Evaluation of segmentations: per-case metrics, per-class/per-modality summaries, report files.

- `evaluate_cases(pairs, labels, ...)`: metrics of in-memory `CasePair`s (used by file- and model-based runs).
- `run_evaluation(pairs, labels, out_dir, ...)`: the same plus `report.json`, `per_case.csv`, `report.md`,
  `overlays/`, written atomically.
- `files`: pairing prediction and reference NIfTI folders for `cdseg evaluate --pred --ref`.
- `evaluate_model(predictor, data_dir, out_dir, split="test", ...)`: predict a dataset split with a model
  (the `cdseg predict` code path) and write the same report (`cdseg evaluate --model --data`).
"""

from keras_cdseg.evaluation.aggregate import describe, summarize
from keras_cdseg.evaluation.cases import CasePair, check_labels, evaluate_case, evaluate_cases
from keras_cdseg.evaluation.model_cases import evaluate_model
from keras_cdseg.evaluation.report import build_report, run_evaluation, to_json_safe, write_report_files

__all__ = [
    "CasePair",
    "build_report",
    "check_labels",
    "describe",
    "evaluate_case",
    "evaluate_cases",
    "evaluate_model",
    "run_evaluation",
    "summarize",
    "to_json_safe",
    "write_report_files",
]
