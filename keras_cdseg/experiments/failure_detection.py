"""`cdseg experiment failure-detection`: does the per-scan quality estimate flag the scans not to trust?

    RESULTS_DIR/
      data/                     synthetic CT + MR phantoms (small), test split held out
      runs/<model>/             three training runs, each ending with its own quality calibration
                                joint (CT + MR), ct_only, mr_only
      cases.json                the corpus: per case the measured Dice, every signal, the estimates
      failure_detection.json    settings, timings, metrics per signal and combined
      risk_coverage.png         risk (1 - Dice) against coverage, combined estimate vs signals

The corpus (no case of it is seen in training or calibration):
    in_distribution   test phantoms of the modalities a model was trained on
    cross_modality    leave one modality out: the CT-only model on MR test phantoms and the reverse
    degraded          test phantoms under the HELD_OUT corruptions (types and strengths unused in calibration)
    real              the TotalSegmentator example CT (tests/data/real, liver = 5), for every model
    real_degraded     the same real CT under the HELD_OUT corruptions, for every model

For every signal alone, a univariate model is fitted on the same calibration samples as the combined one,
so single signals and the combination are compared on equal terms. Metrics: AUROC for failure
(Dice < 0.5), AURC (area under the risk-coverage curve, risk = 1 - Dice, lower is better), Spearman between
estimated and true Dice, MAE of the estimated Dice; and how the flags of `cdseg predict` split the scans:
flagged among the badly wrong (Dice < 0.3) and among the well segmented (Dice >= 0.7), all and real only.
"""

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from keras_cdseg.io_utils import write_json_atomic

SIGNALS = ("critic_score", "feature_shift", "mean_entropy", "mean_max_probability", "agreement", "volume_deviation",
           "num_components", "largest_component_fraction")  # fmt: skip
MODELS = {"joint": None, "ct_only": ("CT",), "mr_only": ("MR",)}
REAL_CT = Path(__file__).resolve().parents[2] / "tests" / "data" / "real"
REAL_CT_LIVER = 5


@dataclasses.dataclass(frozen=True)
class FailureSettings:
    """Size of the benchmark (defaults: the `cdseg demo` model's grid and width; about 40 minutes on two CPU cores).

    Args:
        num_ct, num_mr, num_test: synthetic cases per modality and test cases per modality.
        image_size, target_spacing_mm, base_filters, depth: the small `unet` preset's grid and width.
        steps, batch_size: training length per model.
        val_fraction: share of each modality's training cases held out (the calibration cases).
        held_out: int or None. Number of HELD_OUT degradations applied to the test cases (None: all).
        seed: int.
    """

    num_ct: int = 12
    num_mr: int = 12
    num_test: int = 3
    image_size: int = 96
    target_spacing_mm: float = 4.0
    base_filters: int = 16
    depth: int = 4
    steps: int = 1200
    batch_size: int = 8
    val_fraction: float = 0.3
    held_out: int | None = None
    seed: int = 0

    def run_config(self, data_dir, modalities):
        return RunConfig(
            data_dir=str(data_dir),
            data=DataConfig(image_size=self.image_size, target_spacing_mm=self.target_spacing_mm, context=1),
            model=ModelConfig(preset="unet", base_filters=self.base_filters, depth=self.depth, norm="batch"),
            train=TrainConfig(steps=self.steps, batch_size=self.batch_size, val_every=self.steps,
                              checkpoint_every=self.steps, val_max_cases=2, foreground_weight=3.0,
                              val_fraction=self.val_fraction, seed=self.seed, modalities=modalities),
        )  # fmt: skip


QUICK = FailureSettings(num_ct=3, num_mr=3, num_test=1, image_size=32, target_spacing_mm=12.0, base_filters=4,
                        depth=2, steps=4, batch_size=2, val_fraction=0.5, held_out=2)  # fmt: skip


def run_failure_detection(out_dir, settings=FailureSettings(), log=None, verbose=0):
    """Trains the three models, builds the corpus, scores it; writes and returns failure_detection.json."""
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.data.phantoms.synthetic import write_synthetic_dataset
    from keras_cdseg.run_dir import CONFIG_FILE
    from keras_cdseg.training.trainer import train

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings, started = {}, time.perf_counter()
    data_dir = out / "data"
    if not (data_dir / "dataset.json").exists():
        write_synthetic_dataset(data_dir, num_ct=settings.num_ct, num_mr=settings.num_mr, seed=settings.seed,
                                size="small", num_test=settings.num_test, labels="liver", progress=None)  # fmt: skip
    timings["synth_s"] = round(time.perf_counter() - started, 1)
    for name, modalities in MODELS.items():
        run_dir = out / "runs" / name
        if (run_dir / "summary.json").exists():
            if not (run_dir / "quality.json").exists():  # a finished run without calibration: calibrate it
                from keras_cdseg.inference.quality.assess import calibrate_run

                start = time.perf_counter()
                calibrate_run(run_dir, log=log)
                timings[f"calibrate_{name}_s"] = round(time.perf_counter() - start, 1)
            continue
        log(f"training {name} ({settings.steps} steps) -> {run_dir}")
        start = time.perf_counter()
        train(settings.run_config(data_dir, modalities), run_dir, resume=(run_dir / CONFIG_FILE).exists(),
              verbose=verbose, log=log)  # fmt: skip
        timings[f"train_{name}_s"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    index = load_dataset(data_dir)
    rows = []
    for name, modalities in MODELS.items():
        rows += score_model(out / "runs" / name, name, modalities, index, settings, log)
    timings["corpus_s"] = round(time.perf_counter() - start, 1)
    write_json_atomic(out / "cases.json", rows)
    result = {
        "settings": dataclasses.asdict(settings),
        "num_cases": len(rows),
        "num_failures": int(sum(r["dice"] < 0.5 for r in rows)),
        "corpus": {group: int(sum(r["group"] == group for r in rows)) for group in sorted({r["group"] for r in rows})},
        "metrics": summarize(rows),
        # the corpus (the real CT itself, no degraded copies of it), the synthetic and the real scans
        "metrics_by_corpus": {name: summarize([r for r in rows if keep(r)]) for name, keep in CORPORA.items()},
        "metrics_by_group": {g: summarize([r for r in rows if r["group"] == g]) for g in sorted({r["group"] for r in rows})},
        "flags": {"all": flag_summary(rows),
                  **{name: flag_summary([r for r in rows if keep(r)]) for name, keep in CORPORA.items()}},
        "real_ct": [{k: r[k] for k in ("model", "case_id", "dice", "estimated_dice_default",
                                       "failure_probability_default", "verdict", "flagged", "flags")}
                    for r in rows if r["group"].startswith("real")],
        "timings_s": {**timings, "total_s": round(time.perf_counter() - started, 1)},
    }  # fmt: skip
    write_json_atomic(out / "failure_detection.json", result)
    try:
        save_risk_coverage_figure(rows, out / "risk_coverage.png")
    except ImportError:
        log("matplotlib missing: no risk_coverage.png (pip install -e '.[plots]')")
    return result


def corpus_cases(index, modalities, settings):
    """`(case_id, group, image Volume, label array)` of one model's corpus (see the module docstring)."""
    from keras_cdseg.data.nifti_io import load_image, load_label
    from keras_cdseg.inference.quality.degradations import HELD_OUT, degrade

    held_out = HELD_OUT if settings.held_out is None else HELD_OUT[: settings.held_out]
    for case in index.test:
        image, label = load_image(case.image), np.asarray(load_label(case.label).data)
        in_domain = modalities is None or case.modality in modalities
        yield case.case_id, "in_distribution" if in_domain else "cross_modality", image, label
        if modalities is None:
            for i, degradation in enumerate(held_out):
                degraded, degraded_label = degrade(degradation, image, label, seed=100 + i)
                yield f"{case.case_id}_{degradation.name}", "degraded", degraded, degraded_label
    real = REAL_CT / "ct_abdomen_3mm.nii.gz"
    if real.is_file():
        organs = load_label(REAL_CT / "ct_abdomen_3mm_organs.nii.gz")
        image, label = load_image(real), (np.asarray(organs.data) == REAL_CT_LIVER).astype(np.uint8)
        yield "real_ct", "real", image, label
        for i, degradation in enumerate(held_out):
            degraded, degraded_label = degrade(degradation, image, label, seed=200 + i)
            yield f"real_ct_{degradation.name}", "real_degraded", degraded, degraded_label


def score_model(run_dir, name, modalities, index, settings, log):
    """One row per corpus case of one model: Dice, signals, combined and per-signal estimates."""
    from keras_cdseg.models.saving import load_generator
    from keras_cdseg.inference.quality.assess import assess_volume, dice_of
    from keras_cdseg.inference.quality.calibration import apply_quality_model, fit_quality_model
    from keras_cdseg.inference.quality.estimate import (
        DISCRIMINATOR_FILE,
        QUALITY_JSON,
        QualityEstimator,
        load_discriminator,
        read_calibration,
    )
    from keras_cdseg.inference.quality.signals import QualityProbe
    from keras_cdseg.run_dir import load_run

    run = load_run(run_dir)
    calibration = read_calibration(Path(run_dir) / QUALITY_JSON)
    estimator = QualityEstimator(calibration)
    generator = load_generator(run.generator_path("best"))
    probe = QualityProbe(None, 1, generator=generator, discriminator=load_discriminator(run_dir / DISCRIMINATOR_FILE))
    reference = calibration["volume_reference"]
    single = {s: fit_quality_model(calibration["samples"], reference, (s,)) for s in SIGNALS}
    rows = []
    for case_id, group, image, label in corpus_cases(index, modalities, settings):
        prediction, signals, unavailable, _ = assess_volume(probe, image, run.config.data, (1,), perturbations=True)
        dice = dice_of(np.asarray(label) == 1, prediction.labels == 1)
        quality = estimator.estimate(signals, unavailable)
        default = estimator.estimate({k: v for k, v in signals.items() if k != "agreement"}, unavailable)
        per_signal = {}
        for s, model in single.items():
            if model["features"]:
                per_signal[s] = dict(zip(("estimated_dice", "failure_probability"),
                                         apply_quality_model(model, signals, reference)))  # fmt: skip
        rows.append({
            "model": name, "case_id": case_id, "group": group, "dice": round(dice, 5),
            "estimated_dice": quality["estimated_dice"], "failure_probability": quality["failure_probability"],
            "estimated_dice_default": default["estimated_dice"],
            "failure_probability_default": default["failure_probability"],
            "flags": default["flags"], "flagged": default["flagged"], "verdict": default["verdict"],
            "signals": quality["signals"],
            "per_signal": per_signal,
        })  # fmt: skip
        log(f"{name} {case_id} ({group}): Dice {dice:.3f}, estimated {quality['estimated_dice']:.3f}, "
            f"P(failure) {quality['failure_probability']:.2f}")  # fmt: skip
    return rows


CORPORA = {
    "without_real_degraded": lambda row: row["group"] != "real_degraded",
    "synthetic": lambda row: not row["group"].startswith("real"),
    "real": lambda row: row["group"].startswith("real"),
}
BADLY_WRONG_DICE = 0.3
WELL_SEGMENTED_DICE = 0.7


def flag_summary(rows):
    """How the default estimate splits `rows` (failures, badly wrong, good, well segmented): the number flagged
    (verdict `fail`) and the verdict counts (`ok` / `review` / `fail`, see `inference.quality.triage`)."""
    from keras_cdseg.inference.quality.triage import verdict_counts

    def count(selected):
        counts = {"scans": len(selected), "flagged": int(sum(r["flagged"] for r in selected))}
        if all("verdict" in r for r in selected):
            counts["verdicts"] = verdict_counts(r["verdict"] for r in selected)
        return counts

    return {
        f"badly_wrong (Dice < {BADLY_WRONG_DICE})": count([r for r in rows if r["dice"] < BADLY_WRONG_DICE]),
        "failure (Dice < 0.5)": count([r for r in rows if r["dice"] < 0.5]),
        "good (Dice >= 0.5)": count([r for r in rows if r["dice"] >= 0.5]),
        f"well_segmented (Dice >= {WELL_SEGMENTED_DICE})": count([r for r in rows if r["dice"] >= WELL_SEGMENTED_DICE]),
    }  # fmt: skip


def auroc(labels, scores):
    """Area under the ROC curve of `scores` for binary `labels` (ties count half); None with one class."""
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    positives, negatives = scores[labels], scores[~labels]
    if not len(positives) or not len(negatives):
        return None
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def risk_coverage(confidence, risk):
    """`(coverage, selective risk)`: keeping the k most confident cases, k = 1..n, their mean risk."""
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    risk = np.asarray(risk, np.float64)[order]
    k = np.arange(1, len(risk) + 1)
    return k / len(risk), np.cumsum(risk) / k


def aurc(confidence, risk):
    """Area under the risk-coverage curve (mean selective risk over coverages 1/n..1)."""
    return float(np.mean(risk_coverage(confidence, risk)[1]))


def metrics(dice, estimated_dice, failure_probability):
    from scipy.stats import spearmanr

    dice = np.asarray(dice, np.float64)
    estimated = np.asarray(estimated_dice, np.float64)
    rho = spearmanr(estimated, dice).statistic if np.ptp(estimated) > 0 and np.ptp(dice) > 0 else None
    return {
        "auroc_failure": auroc(dice < 0.5, failure_probability),
        "aurc": aurc(estimated, 1.0 - dice),
        "spearman": None if rho is None else float(rho),
        "mae_dice": float(np.mean(np.abs(estimated - dice))),
    }


def summarize(rows):
    """Metrics of the combined estimate (with and without perturbations) and of every single signal."""
    if not rows:
        return {}
    dice = [r["dice"] for r in rows]
    out = {
        "combined": metrics(dice, [r["estimated_dice"] for r in rows], [r["failure_probability"] for r in rows]),
        "combined_without_perturbations": metrics(dice, [r["estimated_dice_default"] for r in rows],
                                                  [r["failure_probability_default"] for r in rows]),
    }  # fmt: skip
    for s in SIGNALS:
        if all(s in r["per_signal"] for r in rows):
            out[s] = metrics(dice, [r["per_signal"][s]["estimated_dice"] for r in rows],
                             [r["per_signal"][s]["failure_probability"] for r in rows])  # fmt: skip
    risk = 1.0 - np.asarray(dice)
    out["reference"] = {"aurc_oracle": aurc(-risk, risk), "aurc_random": float(np.mean(risk)),
                        "failure_rate": float(np.mean(np.asarray(dice) < 0.5))}  # fmt: skip
    return out


def save_risk_coverage_figure(rows, path, signals=("critic_score", "feature_shift", "mean_entropy", "agreement")):
    """Risk (1 - Dice) against coverage: combined estimate, a few single signals, the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from keras_cdseg.io_utils import atomic_path

    dice = np.asarray([r["dice"] for r in rows])
    figure = Figure(figsize=(6, 4.2))
    axes = figure.add_subplot(1, 1, 1)
    curves = [("combined", [r["estimated_dice"] for r in rows]),
              ("combined, no perturbations", [r["estimated_dice_default"] for r in rows])]  # fmt: skip
    curves += [(s, [r["per_signal"][s]["estimated_dice"] for r in rows]) for s in signals
               if all(s in r["per_signal"] for r in rows)]  # fmt: skip
    curves.append(("oracle", dice))
    for label, confidence in curves:
        coverage, risk = risk_coverage(confidence, 1.0 - dice)
        style = {"color": "black", "linestyle": ":"} if label == "oracle" else {}
        axes.plot(coverage, risk, label=f"{label} (AURC {np.mean(risk):.3f})", **style)
    axes.set_xlabel("coverage (share of scans kept, most trusted first)")
    axes.set_ylabel("selective risk (mean 1 - Dice)")
    axes.set_title(f"Risk-coverage, {len(rows)} scans")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
