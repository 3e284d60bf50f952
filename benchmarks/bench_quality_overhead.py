"""What the per-scan quality estimate adds to `cdseg predict` (target: <= 10 % without perturbations).

    python benchmarks/bench_quality_overhead.py                         # paper preset, 256 px, real CT
    python benchmarks/bench_quality_overhead.py --preset unet --size 96 --spacing 4 --base-filters 16 --depth 4

An untrained generator and discriminator of the chosen size (timing does not depend on the weights) are
written as a run directory (with a calibration fitted on random samples, so the estimate is computed as in
production) and exported as a SavedModel version. The real CT of tests/data/real (122 x 101 x 30, 3 mm) is
segmented through `keras_cdseg.deploy.predict.predict_cases`, the library call behind `cdseg predict`,
alternately with `quality=False`, `quality=True` and `quality=True, quality_perturbations=True`, for both
model kinds (Keras run: critic + block statistics from the generator's own pass; SavedModel: critic only).
Prints one JSON object: median seconds per case per setting and the ratios to the run without quality, plus
the once-per-command costs (loading the model; loading the critic and compiling the quality probe).
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REAL_CT = Path(__file__).resolve().parents[1] / "tests" / "data" / "real" / "ct_abdomen_3mm.nii.gz"


def make_run(root, preset, size, spacing_mm, base_filters, depth):
    import keras

    from keras_cdseg.config import DataConfig, ModelConfig, RunConfig
    from keras_cdseg.inference.quality.assess import QUALITY_FORMAT
    from keras_cdseg.inference.quality.calibration import fit_quality_model, volume_reference
    from keras_cdseg.inference.quality.estimate import save_discriminator
    from keras_cdseg.io_utils import write_json_atomic
    from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

    root.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    kwargs = {} if preset == "paper" else {"base_filters": base_filters, "depth": depth}
    generator = build_segmenter((size, size, 3), num_classes=2, preset=preset, norm="batch", **kwargs)
    generator.save(root / "best_generator.keras")
    discriminator = build_discriminator()
    discriminator.build(((None, size, size, 3), (None, size, size, 2)))
    save_discriminator(discriminator, root / "discriminator.keras", (size, size, 3), 2)
    model = ModelConfig(preset=preset, base_filters=base_filters, depth=depth, norm="batch", num_classes=2)
    run = RunConfig(data_dir="unused", data=DataConfig(image_size=size, target_spacing_mm=spacing_mm), model=model)
    record = {"run": run.to_dict(), "labels": {"background": 0, "liver": 1}, "class_names": ["background", "liver"]}
    (root / "config.json").write_text(json.dumps(record))
    rng = np.random.default_rng(0)
    names = ("critic_score", "feature_shift", "mean_entropy", "mean_max_probability", "agreement", "organ_volume_ml",
             "num_components", "largest_component_fraction")  # fmt: skip
    samples = [{"signals": {n: float(rng.uniform(0, 1000 if n == "organ_volume_ml" else 1)) for n in names},
                "dice": float(rng.uniform())} for _ in range(60)]  # fmt: skip
    reference = volume_reference([800.0, 1500.0, 2000.0])
    write_json_atomic(root / "quality.json", {"format": QUALITY_FORMAT, "volume_reference": reference,
                                              "samples": samples, "model": fit_quality_model(samples, reference),
                                              "organ": {"name": "liver", "value": 1}, "failure_dice": 0.5})  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=["paper", "unet"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--spacing", type=float, default=1.5)
    parser.add_argument("--base-filters", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["keras", "saved_model"])
    parser.add_argument("--no-perturbations", action="store_true", help="Skip the (slow) perturbation setting.")
    args = parser.parse_args()

    from keras_cdseg.deploy.export import export_model
    from keras_cdseg.deploy.predict import predict_cases
    from keras_cdseg.inference.predictors import load_predictor

    work = Path(tempfile.mkdtemp(prefix="bench_quality_"))
    make_run(work / "run", args.preset, args.size, args.spacing, args.base_filters, args.depth)
    export = export_model(work / "run", root=work / "saved_models")
    models = {"keras": work / "run", "saved_model": export.version_dir}
    settings = {"no_quality": {"quality": False}, "quality": {"quality": True},
                "quality_perturbations": {"quality": True, "quality_perturbations": True}}  # fmt: skip
    if args.no_perturbations:
        del settings["quality_perturbations"]
    result = {"settings": vars(args), "input": str(REAL_CT), "kinds": {}}
    for kind in args.kinds:
        start = time.perf_counter()
        predictor = load_predictor(models[kind])
        load_s = time.perf_counter() - start
        from keras_cdseg.inference.quality.estimate import quality_probe_for

        start = time.perf_counter()
        quality_probe_for(predictor)  # once per command: load the critic, build and compile the probe
        setup_s = time.perf_counter() - start
        times = {name: [] for name in settings}
        for name, options in settings.items():  # warm-up: compile every function once
            predict_cases([REAL_CT], work / f"warm_{kind}_{name}", predictor, overwrite=True, **options)
        for repeat in range(args.repeats):
            for name, options in settings.items():  # interleaved, so machine load hits every setting alike
                start = time.perf_counter()
                stats = predict_cases([REAL_CT], work / f"out_{kind}_{name}", predictor, overwrite=True, **options)
                times[name].append(time.perf_counter() - start)
        median = {name: statistics.median(values) for name, values in times.items()}
        # Per-repeat ratios (each pair ran back to back) are less exposed to slow drifts of machine load.
        paired = [q / n for q, n in zip(times["quality"], times["no_quality"])]
        result["kinds"][kind] = {
            "median_s": {k: round(v, 3) for k, v in median.items()},
            "ratio_quality": round(median["quality"] / median["no_quality"], 3),
            "ratio_quality_paired_median": round(statistics.median(paired), 3),
            "ratio_quality_perturbations": round(median["quality_perturbations"] / median["no_quality"], 3)
            if "quality_perturbations" in median else None,
            "once_per_command_s": {"load_model": round(load_s, 3), "quality_setup": round(setup_s, 3)},
            "network_s_last": stats[0]["seconds"]["network"],
            "signals_available": sorted(k for k, v in stats[0]["quality"]["signals"].items() if v is not None),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
