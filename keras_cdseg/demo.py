"""`cdseg demo`: the whole pipeline on the built-in synthetic CT + MR dataset, on a laptop CPU.

    synth (10 CT + 10 MR small phantoms) -> train (one modality-blind network, CAN loss) -> evaluate the test
    split per modality -> export (SavedModel + TFLite) -> predict one CT and one MR test scan

Settings were chosen so that two CPU cores reach liver Dice >= 0.85 on both synthetic modalities in under ten
minutes (docs/demo.md has the measured numbers). Re-running with the same --out reuses the dataset, resumes
training if it was interrupted, and adds a new export version.
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import write_json_atomic

DICE_TARGET = 0.85


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """What the demo builds and how long it trains.

    Args:
        num_ct, num_mr: int. Synthetic cases per modality (3 of each are held out as the test split).
        num_test: int. Test cases per modality.
        image_size, target_spacing_mm: the prepared input grid (96 px at 4 mm covers the whole small phantom).
        base_filters, depth: the `unet` preset's width and depth.
        steps, batch_size, val_every: training length and batch.
        foreground_weight: liver-bearing slices are sampled this many times as often as others.
    """

    num_ct: int = 10
    num_mr: int = 10
    num_test: int = 3
    image_size: int = 96
    target_spacing_mm: float = 4.0
    base_filters: int = 16
    depth: int = 4
    steps: int = 1600
    batch_size: int = 8
    val_every: int = 400
    foreground_weight: float = 3.0
    seed: int = 0

    def run_config(self, data_dir):
        return RunConfig(
            data_dir=str(data_dir),
            data=DataConfig(image_size=self.image_size, target_spacing_mm=self.target_spacing_mm, context=1),
            model=ModelConfig(preset="unet", base_filters=self.base_filters, depth=self.depth, norm="batch"),
            train=TrainConfig(
                steps=self.steps,
                batch_size=self.batch_size,
                val_every=self.val_every,
                checkpoint_every=self.val_every,
                val_max_cases=2,
                foreground_weight=self.foreground_weight,
                seed=self.seed,
            ),
        )


# Small enough for a test: a few steps on 32 px inputs.
QUICK = DemoSettings(num_ct=3, num_mr=3, num_test=1, image_size=32, target_spacing_mm=12.0, base_filters=4,
                     depth=2, steps=4, batch_size=2, val_every=2)  # fmt: skip


def run_demo(out_dir, settings=DemoSettings(), verbose="auto", log=None):
    """Runs every stage and writes OUT/demo.json; returns its content.

    Layout: OUT/data (dataset), OUT/run (training run), OUT/evaluation (report), OUT/saved_models (exports),
    OUT/predictions (segmentations of one CT and one MR test scan, with previews).
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "demo.json").exists() and not (out / "data").exists():
        raise InputError(out, "exists and is not a demo directory; choose another --out")
    timings, started = {}, time.perf_counter()

    def stage(name):
        timings[name] = round(time.perf_counter() - stage.start, 1)
        stage.start = time.perf_counter()

    stage.start = started
    data_dir, run_dir = out / "data", out / "run"
    log(f"[1/5] synthetic CT/MR dataset -> {data_dir}")
    if not (data_dir / "dataset.json").exists():
        from keras_cdseg.data.phantoms.synthetic import write_synthetic_dataset

        write_synthetic_dataset(
            data_dir, num_ct=settings.num_ct, num_mr=settings.num_mr, seed=settings.seed, size="small",
            num_test=settings.num_test, labels="liver", progress=None,
        )  # fmt: skip
    stage("synth_s")

    from keras_cdseg.run_dir import CONFIG_FILE, load_run
    from keras_cdseg.training.trainer import train

    resume = (run_dir / CONFIG_FILE).exists()
    run_config = load_run(run_dir).config if resume else settings.run_config(data_dir)
    log(f"[2/5] training {run_config.train.steps} steps -> {run_dir}" + (" (resuming)" if resume else ""))
    summary = train(run_config, run_dir, resume=resume, verbose=verbose, log=log)
    stage("train_s")
    if summary["status"] != "finished":
        return {"status": summary["status"], "run": str(run_dir)}

    from keras_cdseg.evaluation.model_cases import evaluate_model
    from keras_cdseg.deploy.export import export_model
    from keras_cdseg.inference.predictors import load_predictor

    report_dir = out / "evaluation"
    log(f"[3/5] evaluating the test split per modality -> {report_dir}")
    if report_dir.exists():
        import shutil

        shutil.rmtree(report_dir)
    report = evaluate_model(load_predictor(run_dir), data_dir, report_dir, split="test", progress=False,
                            model_path=run_dir)  # fmt: skip
    stage("evaluate_s")

    log(f"[4/5] exporting SavedModel + TFLite -> {out / 'saved_models'}")
    export = export_model(run_dir, root=out / "saved_models", name="cdseg", tflite=True)
    stage("export_s")

    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.deploy.predict import predict_cases

    index = load_dataset(data_dir)
    scans = [next(c.image for c in index.test if c.modality == m) for m in ("CT", "MR")]
    log(f"[5/5] cdseg predict on {', '.join(p.name for p in scans)} -> {out / 'predictions'}")
    predict_cases(scans, out / "predictions", load_predictor(export.version_dir), preview=True, overwrite=True)
    stage("predict_s")

    liver = report["summary"]["liver"]
    dice = {group: liver[group]["metrics"]["dice"]["mean"] for group in ("CT", "MR") if group in liver}
    score = {group: liver[group]["scores"]["overall"]["mean"] for group in ("CT", "MR") if group in liver}
    result = {
        "status": "finished",
        "liver_dice_test": dice,
        "liver_overall_score_test": score,
        "dice_target": DICE_TARGET,
        "dice_target_met": bool(dice) and all(value >= DICE_TARGET for value in dice.values()),
        "timings_s": {**timings, "total_s": round(time.perf_counter() - started, 1)},
        "settings": dataclasses.asdict(settings),
        "paths": {
            "dataset": str(data_dir),
            "run": str(run_dir),
            "report": str(report_dir / "report.md"),
            "saved_model": str(export.version_dir),
            "tflite": str(export.tflite_files.get("none")),
            "predictions": str(out / "predictions"),
        },
    }
    write_json_atomic(out / "demo.json", result)
    return result


def format_result(result):
    lines = ["", "keras_cdseg demo — one network, CT and MR, no modality label"]
    for group, value in result.get("liver_dice_test", {}).items():
        score = result["liver_overall_score_test"][group]
        lines.append(f"  {group}: liver Dice {value:.3f}   overall score {score:.1f}")
    if "dice_target_met" in result:
        lines.append(f"  Dice >= {result['dice_target']} on both modalities: {'yes' if result['dice_target_met'] else 'NO'}")
        lines.append(f"  time: {json.dumps(result['timings_s'])}")
        for name, path in result["paths"].items():
            lines.append(f"  {name:12s} {path}")
    return "\n".join(lines)
