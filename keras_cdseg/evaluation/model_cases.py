"""Model-based evaluation: predict every case of a dataset split and evaluate it (`cdseg evaluate --model`).

Predictions go through `keras_cdseg.inference.predict_volume`, the code path of `cdseg predict`, one case at
a time (a lazy generator of `CasePair`s), so memory stays flat over the dataset. The largest-component step
is left to `evaluate_cases` (same 26-connected rule), so it is applied once and recorded in the report.
Modalities come from `dataset.json` and only group the report; the model never sees them.
"""

from pathlib import Path

from keras_cdseg.config import to_dict
from keras_cdseg.data.nifti_io import check_same_grid, load_image, load_label
from keras_cdseg.errors import InputError
from keras_cdseg.evaluation.cases import CasePair

SPLITS = ("test", "training", "all")


def split_cases(index, split="test"):
    """`(labelled cases, unlabelled case ids)` of a `DatasetIndex` split ("test", "training" or "all").

    Raises:
        InputError: unknown split, or no labelled case in it.
    """
    if split not in SPLITS:
        raise InputError("--split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
    cases = {"test": index.test, "training": index.training, "all": index.cases}[split]
    labelled = [case for case in cases if case.label is not None]
    unlabelled = [case.case_id for case in cases if case.label is None]
    if not labelled:
        raise InputError(index.root, f"the {split} split has no labelled case to evaluate ({len(cases)} cases)")
    return labelled, unlabelled


def check_model_labels(card, dataset_labels, source="--model"):
    """InputError if the model cannot predict a dataset class, or names a dataset class with another value."""
    for name, value in dataset_labels.items():
        if int(value) == 0:
            continue
        if int(value) >= card.num_classes:
            raise InputError(source, f"dataset class {name}={value} is beyond the model's {card.num_classes} classes "
                                     f"({', '.join(card.class_names)})")  # fmt: skip
        if name in card.labels and int(card.labels[name]) != int(value):
            raise InputError(source, f"class {name!r} is {card.labels[name]} in the model but {value} in the dataset")


def model_postprocessing_classes(card, dataset_labels):
    """Names of the dataset classes that the model's own post-processing (card.largest_component_classes) keeps
    to their largest component; the values are the model's, so a class absent from the dataset is skipped."""
    by_value = {int(value): name for name, value in dataset_labels.items()}
    return tuple(by_value[int(v)] for v in card.largest_component_classes if int(v) in by_value)


def iter_model_case_pairs(predictor, cases, dataset_labels, batch_size=16, with_images=True, quality=True):
    """Yields one `CasePair` per dataset `Case`: the reference label map and the model's prediction.

    Args:
        predictor: a `keras_cdseg.inference.predictors.Predictor` (or any callable with a `card`).
        cases: iterable of labelled `keras_cdseg.data.dataset.Case`.
        dataset_labels: dict name -> value; reference values outside it are an error.
        batch_size: int. Slices per network call.
        with_images: bool. Attach the image (for overlays). Defaults to True.
        quality: bool. Attach each case's quality estimate (`keras_cdseg.inference.quality`), reported
            beside its measured Dice. Defaults to True.

    Raises:
        InputError: unreadable image or label, label values not declared, label off the image grid.
    """
    from keras_cdseg.inference.volume import predict_volume

    card = predictor.card
    if quality:
        from keras_cdseg.inference.quality.assess import predict_with_quality
        from keras_cdseg.inference.quality.estimate import quality_probe_for

        probe, estimator = quality_probe_for(predictor)
    for case in cases:
        image = load_image(case.image)
        label = load_label(case.label, allowed_values=set(int(v) for v in dataset_labels.values()))
        check_same_grid(image, label)
        record = None
        if quality:  # the same prediction, through the quality probe (post-processing is left to evaluation)
            prediction, record = predict_with_quality(probe, estimator, image, card.data_config, batch_size,
                                                      card.largest_component_classes, card.labels)  # fmt: skip
        else:
            prediction = predict_volume(predictor, image, card.data_config, largest_component_classes=(),
                                        batch_size=batch_size)  # fmt: skip
        yield CasePair(
            case_id=case.case_id,
            labels_gt=label.data,
            labels_pred=prediction.labels,
            spacing_mm=label.spacing_mm,
            modality=case.modality,
            image=image.data if with_images else None,
            affine=label.affine,
            quality=record,
        )


def evaluate_model(predictor, data_dir, out_dir, split="test", scoring="chaos",
                   largest_component_classes=None, overlays=True, batch_size=16, progress=True, model_path=None):
    """Predicts a dataset split with `predictor`, evaluates it and writes the report directory atomically.

    Args:
        predictor: `keras_cdseg.inference.predictors.Predictor`.
        data_dir: path of a dataset directory (MSD layout, dataset.json).
        out_dir: report directory to create (must not exist).
        split: "test" (default), "training" or "all". Unlabelled cases are skipped and listed in the report.
        scoring, overlays, progress: see `run_evaluation`.
        largest_component_classes: class names post-processed to their largest component, or None (default)
            for the model's own post-processing (model.json / run: the liver), as `cdseg predict` applies it.
        batch_size: int. Slices per network call.
        model_path: path or None. Recorded in the report settings.

    Returns:
        The report dict (see `run_evaluation`).
    """
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.evaluation.report import run_evaluation
    from keras_cdseg.inference.volume import LABEL_RESTORATION

    index = load_dataset(data_dir)
    labelled, unlabelled = split_cases(index, split)
    foreground = {name: value for name, value in index.labels.items() if int(value) != 0}
    check_model_labels(predictor.card, foreground)
    if largest_component_classes is None:
        largest_component_classes = model_postprocessing_classes(predictor.card, foreground)
    settings = {
        "mode": "model",
        "model": str(Path(model_path).resolve()) if model_path is not None else predictor.describe(),
        "model_kind": predictor.kind,
        "data_dir": str(index.root),
        "split": split,
        "skipped_unlabelled_cases": unlabelled,
        "preprocessing": to_dict(predictor.card.data_config),
        "label_restoration": LABEL_RESTORATION,
        "batch_size": int(batch_size),
    }
    return run_evaluation(
        iter_model_case_pairs(predictor, labelled, index.labels, batch_size, with_images=overlays),
        foreground,
        out_dir,
        scoring=scoring,
        largest_component_classes=largest_component_classes,
        overlays=overlays,
        num_cases=len(labelled),
        settings=settings,
        progress=progress,
    )
