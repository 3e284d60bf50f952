"""Which format to ship as the bundled model: load + predict time, size and Dice of each candidate; prints JSON.

    python benchmarks/bench_bundle_formats.py [RUN_DIR] [--repeats 3] [--candidates keras_float32,keras_float16]

Candidates, each bundled from the same run by scripts/bundle_model.py and measured in a new process
(TensorFlow import, model load, one prediction of the real CT of ../shared/data/real):
    keras_float32   best_generator.keras as trained
    keras_float16   the same with float16-stored weights (computed in float32)
    saved_model     the exported version directory (serving_default + quality_statistics signatures)
Without RUN_DIR, an untrained generator of the real-cpu recipe's shape stands in (times and sizes only:
its Dice means nothing). With a trained run, `liver_dice` is against the reference organs of the real CT
(liver = 5 there) and `liver_dice_vs_float32` says what float16 storage costs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "real"
REAL_CT, REAL_ORGANS, REAL_LIVER = REAL / "ct_abdomen_3mm.nii.gz", REAL / "ct_abdomen_3mm_organs.nii.gz", 5
CANDIDATES = {"keras_float32": ("keras", False), "keras_float16": ("keras", True), "saved_model": ("saved_model", False)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help="comma-separated subset (keras_float32 always runs: the reference); saved_model "
                             "exports, which calibrates the quality estimate of a run without quality.json (minutes)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child mode: one candidate
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return
    if not REAL_CT.is_file():
        sys.exit(f"Error: {REAL_CT}: real CT not found (../shared/data/real beside the checkout)")
    sys.path.insert(0, str(ROOT / "scripts"))
    from bundle_model import bundle_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_dir = args.run_dir or make_recipe_run(tmp / "untrained_run")
        results = {}
        chosen = {"keras_float32", *args.candidates.split(",")}
        unknown = sorted(chosen - set(CANDIDATES))
        if unknown:
            sys.exit(f"Error: --candidates: unknown {unknown}; known: {', '.join(CANDIDATES)}")
        for name, (model_format, float16) in CANDIDATES.items():
            if name not in chosen:
                continue
            record = bundle_model(run_dir, tmp / name, model_format, float16, name=name, max_mb=1e9)
            runs = [_child(tmp / name / "model") for _ in range(args.repeats)]
            results[name] = {
                "bytes": record["bytes"],
                "import_s": statistics.median(r["import_s"] for r in runs),
                "load_s": statistics.median(r["load_s"] for r in runs),
                "predict_s": statistics.median(r["predict_s"] for r in runs),
                "load_plus_predict_s": statistics.median(r["load_s"] + r["predict_s"] for r in runs),
                "liver_dice": runs[0]["liver_dice"],
                "labels_sha": runs[0]["labels_sha"],
            }
    reference = results["keras_float32"]
    for result in results.values():
        result["liver_dice_vs_float32"] = round(result["liver_dice"] - reference["liver_dice"], 5)
        result["labels_equal_float32"] = result["labels_sha"] == reference["labels_sha"]
    print(json.dumps({"run": str(args.run_dir) if args.run_dir else "untrained real-cpu-shaped generator",
                      "trained": args.run_dir is not None, "scan": str(REAL_CT.name), "repeats": args.repeats,
                      "results": results, "load_average": os.getloadavg()}, indent=2))  # fmt: skip


def make_recipe_run(root):
    """An untrained run directory with the real-cpu recipe's network and data settings, four organs."""
    import keras

    from keras_cdseg.config import DataConfig, ModelConfig, RunConfig
    from keras_cdseg.models.segmenter import build_segmenter
    from keras_cdseg.recipes import recipe_values

    recipe = recipe_values("real-cpu")
    labels = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
    data = DataConfig(**recipe["data"])
    model = ModelConfig(num_classes=len(labels), **recipe["model"])
    root.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    generator = build_segmenter((data.image_size, data.image_size, data.num_channels), num_classes=len(labels),
                                preset=model.preset, base_filters=model.base_filters, depth=model.depth)  # fmt: skip
    generator.save(root / "best_generator.keras")
    run = RunConfig(data_dir="untrained (benchmark)", data=data, model=model)
    (root / "config.json").write_text(json.dumps({"run": run.to_dict(), "labels": labels, "class_names": list(labels)}))
    return root


def _child(model_dir):
    out = subprocess.run([sys.executable, __file__, "--measure", str(model_dir)], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"Error: measuring {model_dir} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model_dir):
    """In a new process: TensorFlow import, `load_predictor`, and `predict_volume` of the real CT."""
    import hashlib

    start = time.perf_counter()
    import keras  # noqa: F401  (imports TensorFlow: timed apart from the model load)
    import numpy as np

    import_s = time.perf_counter() - start
    from keras_cdseg.data.nifti_io import load_image, load_label
    from keras_cdseg.inference.predictors import load_predictor
    from keras_cdseg.inference.volume import predict_volume

    start = time.perf_counter()
    predictor = load_predictor(model_dir)
    load_s = time.perf_counter() - start
    volume = load_image(REAL_CT)
    start = time.perf_counter()
    prediction = predict_volume(predictor, volume, predictor.card.data_config, predictor.card.largest_component_classes)
    predict_s = time.perf_counter() - start
    liver = prediction.labels == predictor.card.labels["liver"]
    reference = np.asarray(load_label(REAL_ORGANS).data) == REAL_LIVER
    dice = 2 * np.count_nonzero(liver & reference) / max(np.count_nonzero(liver) + np.count_nonzero(reference), 1)
    return {"import_s": round(import_s, 3), "load_s": round(load_s, 3), "predict_s": round(predict_s, 3),
            "liver_dice": round(float(dice), 5),
            "labels_sha": hashlib.sha256(np.ascontiguousarray(prediction.labels).tobytes()).hexdigest()}  # fmt: skip


if __name__ == "__main__":
    main()
