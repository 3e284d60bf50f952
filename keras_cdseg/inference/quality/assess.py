"""One volume through `predict_volume` with its quality signals, and the calibration that uses it.

    assess_volume(probe, volume, ...)      -> (VolumePrediction, signals, unavailable)
    calibrate_generator(generator, ...)    validation cases + CALIBRATION degradations -> quality.json record
    calibrate_run(run_dir)                 the same for a run directory (end of `cdseg train`, `cdseg export`)

Backend-neutral: numpy, scipy and Keras only (the probe compiles with tf.function on TensorFlow only).
"""

import datetime
import sys
import time
from pathlib import Path

import numpy as np

from keras_cdseg.inference.quality.anatomy import voxel_volume_ml
from keras_cdseg.inference.quality.calibration import fit_quality_model, volume_reference
from keras_cdseg.inference.quality.degradations import CALIBRATION, degrade
from keras_cdseg.inference.quality.estimate import (
    DISCRIMINATOR_FILE,
    QUALITY_FORMAT,
    QUALITY_JSON,
    load_discriminator,
    organ_value_of,
)
from keras_cdseg.inference.quality.signals import QualityProbe, perturbation_agreement
from keras_cdseg.inference.quality.triage import count_intensity_levels
from keras_cdseg.inference.volume import predict_volume

MAX_CALIBRATION_CASES = 8


def assess_volume(probe, volume, data_config, largest_component_classes=(1,), batch_size=16, perturbations=False,
                  with_probabilities=False, plain_predict=None):  # fmt: skip
    """Predicts `volume` through `probe` (one pass) and returns `(prediction, signals, unavailable, seconds)`.

    `seconds` is the time spent on the signals after the network pass (components, perturbation passes);
    the probe's own work during the pass (critic, block statistics, confidence) counts as network time.

    Args:
        probe: `QualityProbe` (reset here).
        perturbations: bool. Also compute `agreement` (3 extra passes through `plain_predict`).
        plain_predict: callable used for the perturbation passes; defaults to the probe's own network.
    """
    probe.reset()
    prediction = predict_volume(probe, volume, data_config, largest_component_classes, batch_size,
                                with_probabilities=with_probabilities)  # fmt: skip
    start = time.perf_counter()
    signals = probe.signals(prediction.labels, voxel_volume_ml(volume.affine))
    signals["input_distinct_values"], signals["input_nonnegative_integers"] = count_intensity_levels(volume.data)
    unavailable = dict(probe.unavailable)
    if perturbations:
        signals["agreement"] = perturbation_agreement(plain_predict or _plain(probe), volume, data_config,
                                                      prediction.labels, probe.organ_value,
                                                      largest_component_classes, batch_size)  # fmt: skip
    probe.reset()
    return prediction, signals, unavailable, time.perf_counter() - start


def dice_of(mask_gt, mask_pred):
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = int(mask_gt.sum()) + int(mask_pred.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(mask_gt, mask_pred).sum()) / total


def measure_samples(probe, cases, data_config, degradations=CALIBRATION, perturbations=True,
                    largest_component_classes=(1,), batch_size=16, log=None, class_labels=None):  # fmt: skip
    """Signals and measured Dice of every case, clean and under every degradation.

    Args:
        cases: iterable of `(case_id, image Volume, label array)`.
        class_labels: dict name -> value, or None. When given, each sample also holds `organs` (the
            `anatomy.organ_summary` of its label map with every single-component organ reduced to its largest
            component, as `cdseg predict` writes it) and `organ_dice` (name -> Dice of that map), so the
            organ-level checks can be measured; they never enter the estimate's fit.

    Returns:
        list of `{"case_id", "degradation", "dice", "signals"}` (+ `organs`, `organ_dice`).
    """
    plain = _plain(probe)
    samples = []
    for case_id, image, label in cases:
        for index, degradation in enumerate((None,) + tuple(degradations)):
            volume, label_d = (image, label) if degradation is None else degrade(degradation, image, label, seed=index)
            prediction, signals, _, _ = assess_volume(probe, volume, data_config, largest_component_classes, batch_size,
                                                   perturbations, plain_predict=plain)  # fmt: skip
            dice = dice_of(np.asarray(label_d) == probe.organ_value, prediction.labels == probe.organ_value)
            name = "none" if degradation is None else degradation.name
            samples.append({"case_id": case_id, "degradation": name, "dice": round(dice, 5), "signals": signals})
            if class_labels:
                samples[-1].update(_organ_results(prediction.labels, np.asarray(label_d), volume.affine, class_labels,
                                                  prediction.geometry))
            if log is not None:
                log(f"quality calibration: {case_id} {name}: Dice {dice:.3f}")
    return samples


def _organ_results(predicted, reference, affine, class_labels, geometry=None):
    """`{"organs", "organ_dice"}` of a predicted label map against its reference (see `measure_samples`)."""
    from keras_cdseg.inference.postprocessing import keep_largest_component
    from keras_cdseg.inference.quality.anatomy import organ_summary
    from keras_cdseg.model_card import default_largest_component_classes

    single = list(default_largest_component_classes(class_labels))
    written = keep_largest_component(predicted, connectivity=26, classes=single) if single else predicted
    dice = {name: round(dice_of(reference == int(value), written == int(value)), 5)
            for name, value in class_labels.items() if int(value) != 0}  # fmt: skip
    return {"organs": organ_summary(written, affine, class_labels, geometry), "organ_dice": dice}


def calibrate_generator(generator, discriminator, cases, data_config, labels, reference_volumes_ml,
                        degradations=CALIBRATION, perturbations=True, batch_size=16, log=None,
                        organ_reference_volumes=None):  # fmt: skip
    """The quality.json record of a generator, calibrated on `cases` and their degraded copies.

    Args:
        generator: Keras generator. discriminator: Keras critic model or None.
        cases: list of `(case_id, image Volume, label array)` (validation cases; never the training cases).
        labels: dict name -> value of the model's classes.
        reference_volumes_ml: organ volumes (mL) of reference segmentations (the plausibility range).
        organ_reference_volumes: list of `anatomy.label_volumes_ml` dicts of reference segmentations (every
            organ's plausibility range), or None.
    """
    organ_value = organ_value_of(labels)
    probe = QualityProbe(None, organ_value, generator=generator, discriminator=discriminator)
    started = time.perf_counter()
    largest = liver_only(labels)
    samples = measure_samples(probe, cases, data_config, degradations, perturbations, largest, batch_size, log)
    return quality_record(samples, reference_volumes_ml, labels, degradations, perturbations,
                          time.perf_counter() - started, organ_reference_volumes=organ_reference_volumes)  # fmt: skip


def liver_only(labels):
    """The largest-component classes of the calibration passes: the liver's, where there is one."""
    return (int(labels["liver"]),) if "liver" in labels else ()


def quality_record(samples, reference_volumes_ml, labels, degradations, perturbations, seconds,
                   organ_reference_volumes=None, **extra):  # fmt: skip
    """The quality.json record: `samples` (of `measure_samples`) fitted into the estimate's model.

    `organ_reference_volumes` (a list of `anatomy.label_volumes_ml` dicts) gives `organ_volume_references`,
    every organ's plausibility range for the organ-level checks. The samples' organ-level results stay out
    of the record (they are for measuring those checks, not for the fit). `extra` fields (e.g. where the
    samples came from) are added to the record.
    """
    from keras_cdseg.inference.quality.anatomy import organ_volume_references

    organ_value = organ_value_of(labels)
    reference = volume_reference(reference_volumes_ml)
    samples = [{k: v for k, v in sample.items() if k not in ("organs", "organ_dice")} for sample in samples]
    organ_name = next((n for n, v in labels.items() if int(v) == organ_value), str(organ_value))
    return {
        "format": QUALITY_FORMAT,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "organ": {"name": organ_name, "value": organ_value},
        "failure_dice": 0.5,
        "degradations": [d.name for d in degradations],
        "perturbations": bool(perturbations),
        "num_cases": len({s["case_id"] for s in samples}),
        "volume_reference": reference,
        "organ_volume_references": organ_volume_references(organ_reference_volumes or []) or None,
        "model": fit_quality_model(samples, reference),
        "samples": samples,
        "seconds": round(seconds, 1),
        "method": "rank-normalized signals; L2-penalized logistic regression for failure (Dice < 0.5) and "
                  "fractional-logit regression for Dice (keras_cdseg.inference.quality.calibration)",
        **extra,
    }  # fmt: skip


def calibrate_run(run_dir, discriminator=None, max_cases=MAX_CALIBRATION_CASES, perturbations=True, log=None):
    """Calibrates a run's best generator on its validation cases; writes and returns RUN/quality.json.

    Args:
        run_dir: a run directory (config.json with the split, best/last generator).
        discriminator: Keras critic model, or None to load RUN/discriminator.keras if it exists.
        max_cases: int. Validation cases used (the first ones of the split).
        perturbations: bool. Also measure the agreement-under-perturbation signal (3 extra passes each).

    Raises:
        InputError: not a run, no generator, or the run's dataset cannot be read.
    """
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.data.nifti_io import load_image, load_label
    from keras_cdseg.models.saving import load_generator
    from keras_cdseg.errors import InputError
    from keras_cdseg.inference.quality.anatomy import label_volumes_ml
    from keras_cdseg.io_utils import write_json_atomic
    from keras_cdseg.run_dir import load_run

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    run = load_run(run_dir)
    generator = load_generator(run.generator_path("best"))
    if discriminator is None:
        discriminator = load_discriminator(Path(run_dir) / DISCRIMINATOR_FILE)
    index = load_dataset(run.config.data_dir)
    by_id = {case.case_id: case for case in index.cases if case.label is not None}
    split = run.record.get("split") or {}
    val_ids = [case_id for case_id in split.get("val", []) if case_id in by_id][:max_cases]
    if not val_ids:
        raise InputError(run.root, "no validation case to calibrate the quality estimate on")
    organ_value = organ_value_of(run.labels)
    allowed = set(run.labels.values())

    def cases():
        for case_id in val_ids:
            image = load_image(by_id[case_id].image)
            yield case_id, image, np.asarray(load_label(by_id[case_id].label, allowed_values=allowed).data)

    reference, organ_reference = [], []
    for case_id in [c for c in split.get("train", []) if c in by_id][:30] + val_ids:
        label = load_label(by_id[case_id].label, allowed_values=allowed)
        reference.append(np.count_nonzero(np.asarray(label.data) == organ_value) * voxel_volume_ml(label.affine))
        organ_reference.append(label_volumes_ml(label.data, label.affine, run.labels))
    log(f"quality calibration on {len(val_ids)} validation case(s) x {1 + len(CALIBRATION)} variants")
    record = calibrate_generator(generator, discriminator, cases(), run.config.data, run.labels, reference,
                                 perturbations=perturbations, organ_reference_volumes=organ_reference)  # fmt: skip
    write_json_atomic(Path(run_dir) / QUALITY_JSON, record)
    model = record["model"]
    log(f"quality calibration: {model['num_samples']} samples, {model['num_failures']} failures "
        f"(Dice < 0.5), {record['seconds']} s -> {Path(run_dir) / QUALITY_JSON}")  # fmt: skip
    return record


def _plain(probe):
    """A `slices -> probabilities` callable of the probe's network that gathers nothing."""
    return probe.network


def export_quality_assets(run_dir, version_dir, log=None, calibrate=True):
    """Copies quality.json and discriminator.keras of a run into an export; returns model.json's `quality`.

    A run without quality.json is calibrated first (written into the run too) unless `calibrate` is False.
    Where there is no run or no readable dataset, the export carries no calibration and says why (`cdseg
    predict` then reports signals without an estimate).
    """
    import shutil

    from keras_cdseg.errors import InputError
    from keras_cdseg.inference.quality.estimate import read_calibration
    from keras_cdseg.run_dir import is_run_dir

    run_dir, version_dir = Path(run_dir), Path(version_dir)
    if not is_run_dir(run_dir):
        return {"calibrated": False, "reason": "the generator is not inside a run directory", "discriminator": None}
    discriminator = run_dir / DISCRIMINATOR_FILE
    if discriminator.is_file():
        shutil.copy2(discriminator, version_dir / DISCRIMINATOR_FILE)
    record = read_calibration(run_dir / QUALITY_JSON)
    reason = None if calibrate else "the run has no quality.json (not calibrated at export)"
    if record is None and calibrate:
        try:
            record = calibrate_run(run_dir, log=log)
        except InputError as e:
            reason = f"calibration failed: {e}"
    result = {"discriminator": DISCRIMINATOR_FILE if discriminator.is_file() else None}
    if record is None:
        return {"calibrated": False, "reason": reason, **result}
    shutil.copy2(run_dir / QUALITY_JSON, version_dir / QUALITY_JSON)
    return {**quality_card(record), **result}


def quality_card(record):
    """model.json's `quality` of a calibrated model: what of its quality.json `record` a reader of the card needs."""
    return {"calibrated": True, "file": QUALITY_JSON, "organ": record["organ"], "failure_dice": record["failure_dice"],
            "volume_reference": record["volume_reference"],
            "organ_volume_references": record.get("organ_volume_references"), "model": record["model"]}  # fmt: skip


def predict_with_quality(probe, estimator, volume, data_config, batch_size=16, postprocess_classes=(),
                         class_labels=None):  # fmt: skip
    """`(prediction without post-processing, quality record)` for model-based evaluation.

    The prediction's labels are left as the network made them (evaluation applies its own post-processing);
    the organ volume of the record, and the organ-level checks when `class_labels` (name -> value) are
    given, are measured after the model's own largest-component step, as in `cdseg predict`.
    """
    from keras_cdseg.inference.postprocessing import keep_largest_component
    from keras_cdseg.inference.quality.anatomy import organ_summary

    prediction, signals, unavailable, _ = assess_volume(probe, volume, data_config, (), batch_size)
    processed = prediction.labels
    if postprocess_classes:
        processed = keep_largest_component(prediction.labels, connectivity=26, classes=list(postprocess_classes))
        num_voxels = int(np.count_nonzero(processed == probe.organ_value))
        signals["organ_volume_ml"] = num_voxels * voxel_volume_ml(volume.affine)
    organs = organ_summary(processed, volume.affine, class_labels, prediction.geometry) if class_labels else None
    return prediction, estimator.estimate(signals, unavailable, organs)
