"""The per-scan quality estimate calibrated on the cross-domain benchmark's held-out folds.

A model trained on every labelled scan (the bundled model) has no held-out scan left to calibrate its quality
estimate on. The benchmark's runs of the same recipe do: each fold's model never saw its test scans. Their
signals and measured Dice, clean and under every calibration degradation, pooled over the folds, give a
calibration on every real scan, each predicted by a model that did not train on it (as nnU-Net's
cross-validation predicts every training case once). It assumes that the relation between the signals and
Dice carries over from the fold models to a model of the same recipe trained on all scans; the record says
where its samples came from.

Each fold's samples are kept in `runs/fold<k>/<variant>/fold_calibration.json` (small, committed with the
results like result.json), so a later checkout without the runs' train/ directories still pools them. The file
names the prediction path that made its samples (`label_restoration`, as evaluation reports do): samples of
another path are measured again where the run's train/ directory is there, and left out (logged) where not.

    calibrate_from_folds(RESULTS_DIR, variant="method") -> quality.json record

The record also says how well such a pooled estimate predicts scans it was not fitted on
(`cross_validate_estimate`): each fold's samples scored by the estimate fitted on the other folds only.
"""

import sys
import time
from pathlib import Path

import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain import FOLDS_FILE, fold_data_dir, run_root
from keras_cdseg.experiments.resumable import differences, read_json
from keras_cdseg.inference.quality.degradations import CALIBRATION
from keras_cdseg.io_utils import write_json_atomic

FOLD_FILE = "fold_calibration.json"


def calibrate_from_folds(out_dir, variant="method", degradations=CALIBRATION, perturbations=False, log=None):
    """Pools every finished fold's run of `variant` on its own test scans into one quality.json record.

    Args:
        out_dir: the benchmark's RESULTS_DIR. A fold is measured from its run's train/ directory once, then
            read from its FOLD_FILE (kept only when made with the same variant, degradations and perturbations).
        variant: which benchmark model's folds to use. Defaults to "method" (the bundled model's recipe).
        degradations: the calibration degradations (`keras_cdseg.inference.quality.degradations`).
        perturbations: bool. Also measure agreement under perturbation (3 extra passes per sample). Defaults to
            False, as `cdseg predict` does (a prediction with `--quality-perturbations` is then scored by the
            estimate refitted without that signal).
        log: callable(str) for progress; defaults to stderr.

    Returns:
        The quality.json record (`assess.quality_record`) with `source`: the benchmark, variant and folds used.

    Raises:
        InputError: not a benchmark directory, no fold of `variant` measured or measurable, or folds of
            different labels.
    """
    from keras_cdseg.inference.quality.assess import quality_record
    from keras_cdseg.inference.volume import LABEL_RESTORATION

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    folds = (read_json(out_dir / FOLDS_FILE) or {}).get("folds")
    if not folds:
        raise InputError(out_dir, f"not a cross-domain results directory (no {FOLDS_FILE})")
    started = time.perf_counter()
    samples, used, labels, reference_by_fold, organ_reference = [], [], None, {}, []
    for fold in folds:
        kept = fold_samples(out_dir, fold["fold"], variant, degradations, perturbations, log)
        if kept is None:
            continue
        if labels is not None and kept["labels"] != labels:
            raise InputError(run_root(out_dir, fold["fold"], variant) / FOLD_FILE,
                             f"labels {kept['labels']} differ from the other folds' {labels}")  # fmt: skip
        labels = kept["labels"]
        samples.extend({**sample, "fold": fold["fold"]} for sample in kept["samples"])
        reference_by_fold[fold["fold"]] = kept["reference_volumes_ml"]
        organ_reference.extend(organ_reference_volumes(out_dir, fold["fold"], kept, labels, log))
        used.append(fold["fold"])
    if not used:
        raise InputError(out_dir, f"no fold of {variant!r} has a {FOLD_FILE} made with today's settings and prediction path, "
                                  "or a finished run with its train/ directory to measure one")  # fmt: skip
    source = {"benchmark": str(out_dir), "variant": variant, "folds": used, "num_folds": len(folds),
              "label_restoration": LABEL_RESTORATION,
              "rule": "each fold's model on its own test scans (never trained on them)"}  # fmt: skip
    checked = cross_validate_estimate(samples, reference_by_fold) if len(used) > 1 else None
    reference = [volume for volumes in reference_by_fold.values() for volume in volumes]
    record = quality_record(samples, reference, labels, degradations, perturbations, time.perf_counter() - started,
                            organ_reference_volumes=organ_reference, source=source, cross_validation=checked)  # fmt: skip
    log(f"quality calibration from {len(used)} fold(s): {record['num_cases']} scans, {len(samples)} samples, "
        f"{record['model']['num_failures']} failures (Dice < 0.5)")  # fmt: skip
    if checked:
        every, clean = checked["all_samples"]["metrics"], checked["clean_scans"]["metrics"]
        log(f"leave-one-fold-out: failure AUROC {_fmt(every['auroc_failure'])} over all samples, "
            f"|estimated - measured Dice| {every['mae_dice']:.3f} (clean scans: {clean['mae_dice']:.3f})")  # fmt: skip
    return record


def cross_validate_estimate(samples, reference_by_fold):
    """How the pooled estimate does on scans it was not fitted on: leave one fold out.

    Args:
        samples: calibration samples, each with its `fold` (`calibrate_from_folds`).
        reference_by_fold: `{fold: [reference organ volumes (mL) of its test scans]}`.

    Returns:
        `{"rule", "all_samples", "clean_scans", "cases"}`. The two groups (every degradation; the undegraded
        scans only) hold `metrics` (failure AUROC, AURC, Spearman, mean |estimated - measured Dice|, as
        `cdseg experiment failure-detection` reports them) and `flags` (how many of the failures, badly
        wrong and well segmented samples get the verdict `fail`); `cases` lists each clean scan's numbers.
    """
    from keras_cdseg.experiments.failure_detection import flag_summary, metrics

    rows = score_left_out(samples, reference_by_fold)

    def group(selected):
        return {"num_samples": len(selected),
                "metrics": metrics([r["dice"] for r in selected], [r["estimated_dice"] for r in selected],
                                   [r["failure_probability"] for r in selected]),
                "flags": flag_summary(selected)}  # fmt: skip

    clean = [r for r in rows if r["degradation"] == "none"]
    keep = ("case_id", "fold", "dice", "estimated_dice", "failure_probability", "verdict")
    return {
        "rule": "each fold's samples scored by the estimate fitted on the other folds' samples and reference volumes",
        "all_samples": group(rows),
        "clean_scans": group(clean),
        "cases": [{key: r[key] for key in keep} for r in clean],
    }


def score_left_out(samples, reference_by_fold, scored=None):
    """Scores each fold's samples with the estimate fitted on the other folds' `samples` and reference volumes.

    Args:
        samples: the calibration samples, each with its `fold`.
        reference_by_fold: `{fold: [reference organ volumes (mL) of its test scans]}`.
        scored: samples to score (each with its `fold`), e.g. under degradations the calibration never used;
            None scores `samples` themselves.

    Returns:
        One row per scored sample: case_id, fold, degradation, dice, estimated_dice, failure_probability,
        verdict, flagged (verdict `fail`).
    """
    from keras_cdseg.inference.quality.calibration import apply_quality_model, fit_quality_model, volume_reference
    from keras_cdseg.inference.quality.triage import judge

    scored = samples if scored is None else scored
    rows = []
    for fold in sorted(reference_by_fold):
        fitted_on = [s for s in samples if s["fold"] != fold]
        reference = volume_reference([v for f, vs in reference_by_fold.items() if f != fold for v in vs])
        model = fit_quality_model(fitted_on, reference)
        for sample in (s for s in scored if s["fold"] == fold):
            estimated, failure = apply_quality_model(model, sample["signals"], reference)
            verdict, _ = judge(estimated, failure, sample["signals"], reference)
            rows.append({"case_id": sample["case_id"], "fold": fold, "degradation": sample["degradation"],
                         "dice": sample["dice"], "estimated_dice": round(estimated, 4),
                         "failure_probability": round(failure, 4), "verdict": verdict,
                         "flagged": verdict == "fail"})  # fmt: skip
    return rows


def _fmt(value):
    return "n/a" if value is None else f"{value:.3f}"


def fold_samples(out_dir, fold, variant="method", degradations=CALIBRATION, perturbations=False, log=None,
                 file_name=FOLD_FILE):
    """One fold's calibration samples: its `file_name`, or measured now from its run's train/ directory and kept.

    `file_name` keeps samples of other degradations apart (`fold_quality_check` keeps its held-out ones in
    their own file).

    Returns:
        `{"variant", "degradations", "perturbations", "label_restoration", "labels", "samples", "reference_volumes_ml"}`, or None
        when the fold has neither a FOLD_FILE of these settings nor a finished run with its train/ directory.
    """
    from keras_cdseg.inference.volume import LABEL_RESTORATION

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    settings = {"variant": variant, "degradations": [d.name for d in degradations], "perturbations": bool(perturbations),
                "label_restoration": LABEL_RESTORATION}  # fmt: skip
    return kept_or_measured(out_dir, fold, file_name, settings, log, lambda train_dir, fold_dir: _measure_fold(
        train_dir, fold_dir, degradations, perturbations, log, f"fold {fold}: {variant}"))  # fmt: skip


def kept_or_measured(out_dir, fold, file_name, settings, log, measure):
    """A fold's record in runs/fold<k>/<variant>/`file_name` when it was made with `settings` (which name the
    variant), else `settings | measure(train_dir, fold_dir)` from the finished run's train/ directory, kept there.

    Returns:
        The record, or None (logged) when the fold has neither such a file nor a finished run with train/.
    """
    root = run_root(out_dir, fold, settings["variant"])
    kept = read_json(root / file_name)
    recorded = None if kept is None else {key: kept.get(key) for key in settings}
    if recorded == settings:
        return kept
    if (read_json(root / "result.json") or {}).get("status") != "finished" or not (root / "train").is_dir():
        found = (f"a {file_name} made with other settings ({differences(recorded, settings)})" if kept is not None
                 else f"no {file_name}")  # fmt: skip
        log(f"fold {fold}: {found} and no finished {settings['variant']} run with its train/ directory to measure "
            "again; left out")  # fmt: skip
        return None
    kept = settings | measure(root / "train", fold_data_dir(out_dir, fold))
    write_json_atomic(root / file_name, kept)
    return kept


def _measure_fold(train_dir, fold_dir, degradations, perturbations, log, prefix):
    """`{"labels", "samples", "reference_volumes_ml", "organ_reference_volumes_ml"}` of one fold's model on the
    fold's test scans (the samples with their organ-level results, `assess.measure_samples`)."""
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.data.nifti_io import load_image, load_label
    from keras_cdseg.inference.quality.anatomy import label_volumes_ml
    from keras_cdseg.inference.quality.assess import liver_only, measure_samples, voxel_volume_ml
    from keras_cdseg.inference.quality.estimate import DISCRIMINATOR_FILE, load_discriminator, organ_value_of
    from keras_cdseg.inference.quality.signals import QualityProbe
    from keras_cdseg.models.saving import load_generator
    from keras_cdseg.run_dir import load_run

    run = load_run(train_dir)
    index = load_dataset(fold_dir)
    allowed, organ_value = set(run.labels.values()), organ_value_of(run.labels)
    probe = QualityProbe(None, organ_value, generator=load_generator(run.generator_path("best")),
                         discriminator=load_discriminator(Path(train_dir) / DISCRIMINATOR_FILE))  # fmt: skip
    reference, organ_reference = [], []

    def cases():
        for case in index.test:
            label = load_label(case.label, allowed_values=allowed)
            reference.append(np.count_nonzero(np.asarray(label.data) == organ_value) * voxel_volume_ml(label.affine))
            organ_reference.append(label_volumes_ml(label.data, label.affine, run.labels))
            yield case.case_id, load_image(case.image), np.asarray(label.data)

    log(f"{prefix} on its {len(index.test)} test scans x {1 + len(degradations)} variants")
    samples = measure_samples(probe, cases(), run.config.data, degradations, perturbations, liver_only(run.labels),
                              log=log, class_labels=run.labels)  # fmt: skip
    return {"labels": dict(run.labels), "samples": samples, "reference_volumes_ml": reference,
            "organ_reference_volumes_ml": organ_reference}  # fmt: skip


def organ_reference_volumes(out_dir, fold, kept, labels, log):
    """Every organ's reference volumes of a fold's test scans: kept in its fold file, or read from the fold's
    test labels (fold files written before the organ-level checks lack them); [] when neither is there."""
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.data.nifti_io import load_label
    from keras_cdseg.inference.quality.anatomy import label_volumes_ml

    if kept.get("organ_reference_volumes_ml") is not None:
        return kept["organ_reference_volumes_ml"]
    try:
        index = load_dataset(fold_data_dir(out_dir, fold))
        allowed = set(int(v) for v in labels.values())
        return [label_volumes_ml(label.data, label.affine, labels)
                for label in (load_label(case.label, allowed_values=allowed) for case in index.test)]  # fmt: skip
    except (InputError, OSError) as e:
        log(f"fold {fold}: no organ reference volumes ({e}); the organ-level volume check leaves its scans out")
        return []
