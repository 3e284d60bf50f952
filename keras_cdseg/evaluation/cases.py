"""Per-case evaluation of in-memory label maps: the entry point shared by file-based and model-based runs.

`evaluate_cases` takes an iterable (possibly a lazy generator, so memory stays flat) of `CasePair`s holding
a reference and a predicted label map on the same grid, and returns one JSON-ready result per case with the
full metric set of every requested class. `cdseg evaluate --pred --ref` feeds it pairs read from NIfTI files;
model-based evaluation feeds it pairs produced by inference.
"""

import dataclasses
from pathlib import Path

import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.evaluation.progress import ProgressLine
from keras_cdseg.metrics import compute_segmentation_metrics
from keras_cdseg.metrics.scores import get_scheme
from keras_cdseg.inference.postprocessing import count_components, keep_largest_component

LARGEST_COMPONENT_CONNECTIVITY = 26


@dataclasses.dataclass(frozen=True, eq=False)
class CasePair:
    """A reference and a predicted label map of one case, on the same voxel grid.

    Args:
        case_id: str. Name used in reports, e.g. "ct_003".
        labels_gt: integer array (2D or 3D). The reference label map, 0 = background.
        labels_pred: integer array of the same shape. The predicted label map.
        spacing_mm: tuple of floats. Voxel size per axis (from the reference header).
        modality: str or None. Groups the report ("CT", "MR"); never used for computing metrics.
        image: array or None. The intensity image on the same grid, only drawn under overlays.
        affine: 4x4 array or None. Voxel-to-world matrix; only used to show overlays in RAS orientation.
        quality: dict or None. The model's own quality estimate of the prediction (model-based evaluation),
            copied into the case result beside the measured metrics.
    """

    case_id: str
    labels_gt: np.ndarray
    labels_pred: np.ndarray
    spacing_mm: tuple
    modality: str | None = None
    image: np.ndarray | None = None
    affine: np.ndarray | None = None
    quality: dict | None = None


def check_labels(labels):
    """Returns `{name: value}` of the foreground classes to evaluate (background, value 0, dropped).

    Raises:
        InputError: no foreground class, a value outside 1..255, or two names with the same value.
    """
    classes = {str(name): int(value) for name, value in dict(labels).items() if int(value) != 0}
    if not classes:
        raise InputError("labels", "no foreground class to evaluate (give e.g. liver=1)")
    bad = {name: value for name, value in classes.items() if not 1 <= value <= 255}
    if bad:
        raise InputError("labels", f"label values must be in 1..255, got {bad}")
    if len(set(classes.values())) != len(classes):
        raise InputError("labels", f"two classes share a value: {classes}")
    return classes


def evaluate_case(pair, labels, scoring="chaos", largest_component_classes=()):
    """Full metric set of every class of one case.

    Args:
        pair: CasePair.
        labels: dict, class name -> label value (background ignored).
        scoring: "chaos" or "sliver07".
        largest_component_classes: iterable of class names whose prediction keeps only its largest 26-connected
            3D component before scoring (the paper's post-processing, opt-in); names not in `labels` are ignored.
            Defaults to () : masks are scored as given, as CHAOS's evaluation code, nnU-Net, MONAI and
            DeepMind's surface-distance do.

    Returns:
        A dict: `case_id`, `modality`, `shape`, `spacing_mm`, `classes` (name -> the dict of
        `compute_segmentation_metrics`, plus `label_value`, `num_components_pred` (26-connected 3D components
        of the prediction as scored), `largest_component` (whether the step was applied) and, when it was,
        `num_components_pred_before`), and `flags` (e.g. "liver:empty_pred").

    Raises:
        InputError: shapes differ, spacing is invalid, or a label map is not integer.
    """
    return _evaluate(pair, check_labels(labels), scoring, largest_component_classes)[0]


def _evaluate(pair, classes, scoring, largest_component_classes):
    """`evaluate_case` that also returns the post-processed prediction (drawn in the overlays)."""
    labels_gt = np.asarray(pair.labels_gt)
    labels_pred = np.asarray(pair.labels_pred)
    for name, array in (("reference", labels_gt), ("prediction", labels_pred)):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise InputError(pair.case_id, f"{name} label map must be integer, got dtype {array.dtype}")
    if labels_gt.shape != labels_pred.shape:
        raise InputError(pair.case_id, f"prediction shape {labels_pred.shape} differs from reference {labels_gt.shape}")
    processed = [classes[name] for name in largest_component_classes if name in classes]
    components_before = {value: count_components(labels_pred, value) for value in processed}
    if processed:
        labels_pred = keep_largest_component(labels_pred, LARGEST_COMPONENT_CONNECTIVITY, classes=processed)
    result = {
        "case_id": pair.case_id,
        "modality": pair.modality,
        "shape": [int(n) for n in labels_gt.shape],
        "spacing_mm": [float(s) for s in pair.spacing_mm],
        "classes": {},
        "flags": [],
    }
    for name, value in classes.items():
        try:
            metrics = compute_segmentation_metrics(labels_gt == value, labels_pred == value, pair.spacing_mm, scoring)
        except InputError as e:
            raise InputError(pair.case_id, f"{e.source}: {e.problem}") from None
        components = {"num_components_pred": count_components(labels_pred, value),
                      "largest_component": value in components_before}
        if value in components_before:
            components["num_components_pred_before"] = components_before[value]
        result["classes"][name] = {"label_value": value, **metrics, **components}
        result["flags"].extend(f"{name}:{flag}" for flag in metrics["flags"])
    if pair.quality is not None:
        result["quality"] = pair.quality
    return result, labels_pred


def evaluate_cases(
    pairs,
    labels,
    scoring="chaos",
    largest_component_classes=(),
    overlay_dir=None,
    num_cases=None,
    progress=True,
):
    """Evaluates every case of `pairs`, one at a time.

    Args:
        pairs: iterable of CasePair; consumed lazily, so a generator keeps one case in memory at a time.
        labels: dict, class name -> label value.
        scoring: "chaos" or "sliver07".
        largest_component_classes: see `evaluate_case`.
        overlay_dir: path or None. If given, one PNG per case (`<case_id>.png`) with reference and predicted
            contours on the worst, median and best slice of the "liver" class if evaluated, else the first class.
        num_cases: int or None. Total for the progress line, if `pairs` has no length.
        progress: bool. Print a progress line on stderr. Defaults to True.

    Returns:
        A list of `evaluate_case` results, in the order of `pairs`.
    """
    classes = check_labels(labels)
    get_scheme(scoring)
    if num_cases is None and hasattr(pairs, "__len__"):
        num_cases = len(pairs)
    bar = ProgressLine(total=num_cases, enabled=progress)
    results = []
    try:
        for pair in pairs:
            result, labels_pred = _evaluate(pair, classes, scoring, largest_component_classes)
            if overlay_dir is not None:
                from keras_cdseg.evaluation.overlays import save_case_overlay

                save_case_overlay(
                    Path(overlay_dir) / f"{pair.case_id}.png",
                    pair.labels_gt,
                    labels_pred,
                    class_value=classes.get("liver", next(iter(classes.values()))),
                    spacing_mm=pair.spacing_mm,
                    image=pair.image,
                    title=pair.case_id,
                    affine=pair.affine,
                )
            results.append(result)
            bar.update(pair.case_id)
    finally:
        bar.close()
    return results
