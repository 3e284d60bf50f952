"""Wall time and peak memory of `cdseg predict` (a new process each time: import and model load included) of
a 512×512×100 CT, with the bundled model as `cdseg predict` runs it (its TFLite copy on LiteRT when bundled),
the same bundled network on Keras/TensorFlow, and the paper preset at 256 px; prints JSON.

    python benchmarks/bench_predict_bundled.py [--repeats 3] [--size 512 --slices 100] [--paper-image-size 256]

The CT is the real full-range HU CT of ../shared/data/real resampled (linear) to size×size×slices over the
same field of view, so the body, its HU values and the organs are real. The paper-preset model is untrained
(its weights do not change the time). Peak memory is each `cdseg predict` process's maximum resident set
(`os.wait4`'s rusage of that child, the per-child form of getrusage(RUSAGE_CHILDREN)). Issue 18's target:
bundled model <= 10 s wall on the 2-core machine. Run it on a quiet machine; the load average is recorded.
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

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / ".." / "shared" / "data" / "real" / "ct_abdomen_3mm.nii.gz"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512, help="in-plane voxels of the CT")
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--paper-image-size", type=int, default=256)
    parser.add_argument("--no-quality", action="store_true", help="pass --no-quality (default: as a user runs it)")
    args = parser.parse_args()
    if not REAL_CT.is_file():
        sys.exit(f"Error: {REAL_CT}: real CT not found (../shared/data/real beside the checkout)")
    from keras_cdseg.pretrained import bundled_model

    bundle = bundled_model()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scan = write_resampled_ct(tmp / "ct.nii.gz", args.size, args.slices)
        paper_run = make_paper_run(tmp / "paper_run", args.paper_image_size)
        models = {"bundled": None}
        if bundle is not None and bundle.tflite is not None:
            models["bundled_keras"] = bundle.path  # the same weights through TensorFlow, as before LiteRT
        models[f"paper_{args.paper_image_size}px"] = paper_run
        results = {name: time_predict(scan, model, tmp, args.repeats, args.no_quality) for name, model in models.items()}
    print(json.dumps({
        "benchmark": "cdseg predict, new process per run (import + model load + prediction + writing)",
        "scan": {"shape": [args.size, args.size, args.slices], "source": "real CT resampled", "dtype": "int16"},
        "bundled_model": None if bundle is None else {"name": bundle.name, "version": bundle.version,
                                                      "sha256": bundle.sha256, "placeholder": bundle.placeholder},
        "quality": not args.no_quality,
        "results": results,
        "bundled_over_paper": round(results["bundled"]["median_s"] / results[f"paper_{args.paper_image_size}px"]["median_s"], 3),
        "target_s": 10.0,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }, indent=2))  # fmt: skip


def write_resampled_ct(path, size, slices):
    """The real CT resampled to `size`×`size`×`slices` over its own field of view, int16 HU, same orientation."""
    from scipy import ndimage

    source = nib.load(str(REAL_CT))
    data = np.asarray(source.dataobj, dtype=np.float32)
    factors = (size / data.shape[0], size / data.shape[1], slices / data.shape[2])
    resampled = ndimage.zoom(data, factors, order=1, grid_mode=True, mode="nearest")
    affine = source.affine.copy()
    affine[:3, :3] = source.affine[:3, :3] / np.asarray(factors)
    # keep the field of view: the first voxel centre moves by half the old minus half the new spacing
    affine[:3, 3] = source.affine[:3, 3] + source.affine[:3, :3] @ ((1 / np.asarray(factors) - 1) / 2)
    image = nib.Nifti1Image(np.round(resampled).astype(np.int16), affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path


def make_paper_run(root, image_size):
    """A run directory with an untrained `paper`-preset generator for the four organs at `image_size` px."""
    import keras

    from keras_cdseg.config import DataConfig, ModelConfig, RunConfig
    from keras_cdseg.models.segmenter import build_segmenter

    labels = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
    root.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    build_segmenter((image_size, image_size, 3), num_classes=len(labels), preset="paper").save(root / "best_generator.keras")
    data = DataConfig(image_size=image_size, target_spacing_mm=1.5 * 256 / image_size)
    run = RunConfig(data_dir="untrained (benchmark)", data=data, model=ModelConfig(num_classes=len(labels)))
    (root / "config.json").write_text(json.dumps({"run": run.to_dict(), "labels": labels, "class_names": list(labels)}))
    return root


def time_predict(scan, model, work, repeats, no_quality):
    """Median / min wall seconds and peak RSS (MB) of `cdseg predict` runs from a folder without saved_models/."""
    cwd = work / "cwd"
    cwd.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CDSEG_MODEL"}
    command = [str(Path(sys.executable).with_name("cdseg")), "predict", str(scan), "-o", "seg.nii.gz", "--overwrite"]
    command += (["--model", str(model)] if model is not None else []) + (["--no-quality"] if no_quality else [])
    seconds, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = process.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(process.pid, 0)
        seconds.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"Error: cdseg predict failed:\n{output[-2000:]}")
        peaks.append(usage.ru_maxrss / 1024)  # kB on Linux
    model_line = next((line for line in output.splitlines() if line.startswith("Model: ")), None)
    return {"median_s": round(statistics.median(seconds), 2), "min_s": round(min(seconds), 2),
            "runs_s": [round(s, 2) for s in seconds], "peak_rss_mb": round(max(peaks), 1), "model": model_line}  # fmt: skip


if __name__ == "__main__":
    main()
