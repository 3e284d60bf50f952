"""Peak memory of `predict_volume` (labels only) as the number of slices grows: it should stay flat.

    python benchmarks/bench_predict_memory.py                        # 512×512×{100, 300, 1000}
    python benchmarks/bench_predict_memory.py --num-slices 100 300   # quicker

Each volume size runs in a fresh subprocess (so one run's freed-but-kept heap cannot hide the next one's
peak). The worker builds a tiny generator (`build_segmenter((256, 256, 3), base_filters=4, depth=2)`:
network time stays small, and its activations are the same for every volume size), traces it on a small
warm-up volume, synthesises the benchmark CT (LPS storage, 0.75 mm pixels, 2.5 mm slices, float32 as
`load_image` returns it) and then measures the resident memory above the level just before
`predict_volume`: sampled every 5 ms (`peak_rss_growth_mb`) and from the kernel's high-water mark
(`hwm_growth_mb`, exact: VmHWM is reset through /proc/self/clear_refs just before). With `--labels
threshold` the network still runs but a liver-band threshold replaces its output (an untrained network
predicts no liver), so the largest-component step labels a realistic, speckled liver. The
input itself is not part of the growth (it exists before); `labels_mb` is the one uint8 output volume
the growth cannot avoid. Prints one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_predict import PeakRss, _rss_mb, synthetic_ct  # noqa: E402


def _reset_high_water_mark():
    """Resets the kernel's peak-RSS counter (VmHWM) to the current RSS; False where not supported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _high_water_mark_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(num_slices, size, batch_size, postprocess, labels):
    """One volume size in this process: dict of memory (MiB) and seconds."""
    import keras

    from keras_cdseg.config import DataConfig
    from keras_cdseg.data.nifti_io import Volume
    from keras_cdseg.inference.volume import keras_predictor, predict_volume
    from keras_cdseg.models.segmenter import build_segmenter

    keras.utils.set_random_seed(0)
    config = DataConfig(image_size=256, target_spacing_mm=1.5, context=1)
    model = build_segmenter((256, 256, 3), num_classes=2, base_filters=4, depth=2)
    predict = keras_predictor(model)
    classes = (1,) if postprocess else ()
    spacing_mm = (0.75, 0.75, 2.5)
    warm_data, warm_affine = synthetic_ct((size, size, 2 * batch_size + 3), spacing_mm, seed=1)
    predict_volume(predict, Volume(warm_data.astype(np.float32), warm_affine), config, classes, batch_size)
    del warm_data

    data, affine = synthetic_ct((size, size, num_slices), spacing_mm)
    volume = Volume(data.astype(np.float32), affine)
    del data
    if labels == "threshold":
        network = predict

        def predict(slices):
            # The network still runs (same time and activations); its output is replaced by a liver-band
            # threshold, so the largest-component step has a real (speckled) liver to work on.
            network(slices)
            centre = slices[..., slices.shape[-1] // 2]
            liver = ((centre > 0.6) & (centre < 0.8)).astype(np.float32)
            return np.stack([1 - liver, liver], axis=-1)

    before_mb = _rss_mb()
    reset_hwm = _reset_high_water_mark()
    start = time.perf_counter()
    with PeakRss() as memory:
        prediction = predict_volume(predict, volume, config, classes, batch_size)
    seconds = time.perf_counter() - start
    hwm_mb = _high_water_mark_mb()
    return {
        "input_float32_mb": round(volume.data.nbytes / 2**20, 1),
        "labels_mb": round(prediction.labels.nbytes / 2**20, 1),
        "peak_rss_growth_mb": round(memory.peak_mb - before_mb, 1),
        "hwm_growth_mb": round(hwm_mb - before_mb, 1) if reset_hwm else None,
        "rss_before_mb": round(before_mb, 1),
        "seconds": round(seconds, 2),
        "stage_seconds": {k: round(v, 2) for k, v in prediction.seconds.items()},
        "liver_voxels": int(np.count_nonzero(prediction.labels == 1)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-slices", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--size", type=int, default=512, help="In-plane matrix of the synthetic CT.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-postprocess", action="store_true", help="Skip the largest-component step.")
    parser.add_argument("--labels", default="network", choices=["network", "threshold"])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args.size, args.batch_size, not args.no_postprocess, args.labels)))
        return

    results = {"size": args.size, "batch_size": args.batch_size, "postprocess": not args.no_postprocess,
               "labels": args.labels,
               "model": "build_segmenter((256, 256, 3), base_filters=4, depth=2)", "runs": {}}  # fmt: skip
    for num_slices in args.num_slices:
        command = [sys.executable, __file__, "--worker", str(num_slices), "--size", str(args.size),
                   "--batch-size", str(args.batch_size), "--labels", args.labels]  # fmt: skip
        if args.no_postprocess:
            command.append("--no-postprocess")
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results["runs"][f"{args.size}x{args.size}x{num_slices}"] = json.loads(output.strip().splitlines()[-1])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
