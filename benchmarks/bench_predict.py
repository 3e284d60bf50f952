"""Seconds per 512×512×100 CT volume for `cdseg predict`, split by stage, with peak memory and FLOP/s.

    python benchmarks/bench_predict.py                          # paper preset at 256×256, T = 1, batch 16
    python benchmarks/bench_predict.py --num-slices 100 300     # memory growth with volume size
    python benchmarks/bench_predict.py --kinds keras tflite --no-quantized

A synthetic CT (int16, stored LPS, 0.75 mm pixels, 2.5 mm slices, so preparation reorients and halves the
resolution to the model's 1.5 mm × 256) is segmented by an untrained generator (timing does not depend on the
weights) through `keras_cdseg.deploy.predict.predict_cases`, the library call behind `cdseg predict`, once
per model kind (Keras, exported SavedModel, TFLite). Prints one JSON object with, per kind: seconds for load /
prepare / network / postprocess / write and their total, total ÷ network (design target ≤ 1.3), the
network's achieved GFLOP/s as a share of a matmul peak measured in the same process (design target ≥ 70 %),
and the peak resident memory above the level before the case. TFLite variants (float32, float16,
dynamic-range int8) also get per-slice time and file size. Model loading and process start-up are reported
separately: they are paid once per command, not per volume.
"""

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


class PeakRss:
    """Samples this process's resident memory every few milliseconds; `.peak_mb` above the starting level."""

    def __init__(self, interval_s=0.005):
        self.interval_s = interval_s
        self.start_mb = self.peak_mb = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb())
            time.sleep(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())

    @property
    def growth_mb(self):
        return self.peak_mb - self.start_mb


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def matmul_peak_gflops(n=4096, repeats=8):
    """Best single-precision matmul rate of this process (TensorFlow/oneDNN, all threads)."""
    import tensorflow as tf

    a = tf.random.uniform((n, n))
    b = tf.random.uniform((n, n))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def forward_gflop(model, input_shape):
    """Forward GFLOP of one slice, counted by TensorFlow's graph profiler."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec((1,) + input_shape))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=fn.graph, options=options).total_float_ops / 1e9


def synthetic_ct(shape, spacing_mm, seed=0):
    """int16 HU volume stored LPS: body ellipse (-20 HU), liver-like blob (+60 HU), spine (+700 HU), noise."""
    rng = np.random.default_rng(seed)
    x = (np.arange(shape[0]) - shape[0] / 2) * spacing_mm[0]
    y = (np.arange(shape[1]) - shape[1] / 2) * spacing_mm[1]
    z = (np.arange(shape[2]) - shape[2] / 2) * spacing_mm[2]
    xx, yy = np.meshgrid(x, y, indexing="ij")
    body = (xx / 160) ** 2 + (yy / 110) ** 2 <= 1
    spine = ((xx / 18) ** 2 + ((yy - 70) / 18) ** 2) <= 1
    volume = np.empty(shape, dtype=np.int16)
    for k, zk in enumerate(z):
        liver = ((xx + 60) / 80) ** 2 + ((yy + 10) / 65) ** 2 + (zk / 110) ** 2 <= 1
        plane = np.where(body, -20.0, -1000.0) + np.where(liver & body, 80.0, 0.0) + np.where(spine, 720.0, 0.0)
        volume[:, :, k] = plane + rng.normal(0, 12, plane.shape)
    affine = np.diag([-spacing_mm[0], -spacing_mm[1], spacing_mm[2], 1.0])  # LPS storage
    affine[:3, 3] = [shape[0] / 2 * spacing_mm[0], shape[1] / 2 * spacing_mm[1], -shape[2] / 2 * spacing_mm[2]]
    return volume, affine


def make_run_dir(root, args):
    import keras

    from keras_cdseg.config import DataConfig, ModelConfig, RunConfig
    from keras_cdseg.models.segmenter import build_segmenter

    keras.utils.set_random_seed(0)
    shape = (args.image_size, args.image_size, 2 * args.context + 1)
    model = build_segmenter(shape, num_classes=2, preset=args.preset)
    root.mkdir(parents=True)
    model.save(root / "best_generator.keras")
    data = DataConfig(image_size=args.image_size, target_spacing_mm=args.target_spacing_mm, context=args.context)
    run = RunConfig(data_dir="synthetic", data=data, model=ModelConfig(preset=args.preset))
    record = {"run": run.to_dict(), "labels": {"background": 0, "liver": 1}, "class_names": ["background", "liver"]}
    (root / "config.json").write_text(json.dumps(record))
    return model, shape


def time_tflite_per_slice(path, slices, reference, repeats=3):
    """Best seconds per slice of a TFLite file, and its deviation from the Keras model on the same slices."""
    from keras_cdseg.inference.predictors import TFLitePredictor

    predictor = TFLitePredictor(path)
    probabilities = predictor(slices)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predictor(slices)
        best = min(best, time.perf_counter() - start)
    agreement = float(np.mean(np.argmax(probabilities, -1) == np.argmax(reference, -1)))
    return best / len(slices), predictor.runtime, float(np.abs(probabilities - reference).max()), agreement


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["paper", "unet"])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--target-spacing-mm", type=float, default=1.5)
    parser.add_argument("--size", type=int, default=512, help="In-plane matrix of the synthetic CT.")
    parser.add_argument("--num-slices", type=int, nargs="+", default=[100])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--kinds", nargs="+", default=["keras", "saved_model", "tflite"],
                        choices=["keras", "saved_model", "tflite"])
    parser.add_argument("--no-quantized", action="store_true", help="Skip the float16 / dynamic TFLite variants.")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from keras_cdseg.data.nifti_io import save_array
    from keras_cdseg.deploy.predict import predict_cases
    from keras_cdseg.deploy.export import export_model
    from keras_cdseg.inference.predictors import load_predictor

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "preset": args.preset,
        "batch_size": args.batch_size,
    }
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        model, shape = make_run_dir(tmp / "run", args)
        results["model_input"] = list(shape)
        results["generator_params"] = model.count_params()
        gflop_per_slice = forward_gflop(model, shape)
        results["forward_gflop_per_slice"] = round(gflop_per_slice, 3)
        # The peak is measured before and after the runs: on a shared machine it drifts with the load,
        # and the higher of the two is the conservative reference.
        peak_start = matmul_peak_gflops()

        start = time.perf_counter()
        quantize = () if args.no_quantized else ("float16", "dynamic")
        export = export_model(tmp / "run", root=tmp / "saved_models", tflite=True, quantize=quantize)
        results["export_s"] = round(time.perf_counter() - start, 2)
        paths = {"keras": tmp / "run", "saved_model": export.version_dir, "tflite": export.tflite_files["none"]}

        runs = []
        spacing_mm = (args.target_spacing_mm / 2, args.target_spacing_mm / 2, 2.5)
        for num_slices in args.num_slices:
            image, affine = synthetic_ct((args.size, args.size, num_slices), spacing_mm)
            scan = tmp / f"ct_{num_slices}.nii.gz"
            save_array(image, affine, scan, dtype=np.int16)
            del image
            volume_key = f"{args.size}x{args.size}x{num_slices}"
            results[volume_key] = {"input_mb": round(scan.stat().st_size / 2**20, 1)}
            for kind in args.kinds:
                start = time.perf_counter()
                predictor = load_predictor(paths[kind])
                model_load_s = time.perf_counter() - start
                # Warm-up on a copy of the scan traces the network once, as a second case of a command would be.
                predict_cases([scan], tmp / f"warm_{kind}_{num_slices}", predictor, batch_size=args.batch_size)
                with PeakRss() as memory:
                    stats = predict_cases([scan], tmp / f"out_{kind}_{num_slices}", predictor,
                                          batch_size=args.batch_size)[0]["seconds"]  # fmt: skip
                network_gflops = num_slices * gflop_per_slice / stats["network"]
                runs.append((volume_key, kind, network_gflops))
                results[volume_key][kind] = {
                    "model_load_s": round(model_load_s, 2),
                    "seconds": stats,
                    "total_over_network": round(stats["total"] / stats["network"], 3),
                    "network_ms_per_slice": round(1000 * stats["network"] / num_slices, 2),
                    "network_gflop_per_s": round(network_gflops, 1),
                    "peak_rss_growth_mb": round(memory.growth_mb, 1),
                    "rss_before_case_mb": round(memory.start_mb, 1),
                }
                del predictor

        # Variants run on real prepared slices (the middle of the last CT), compared with the Keras model.
        from keras_cdseg.data.nifti_io import load_image
        from keras_cdseg.data.preprocessing import prepare_volume
        from keras_cdseg.inference.volume import iter_batches

        card = load_predictor(export.version_dir).card
        prepared = prepare_volume(load_image(scan), card.data_config).image
        middle = prepared[len(prepared) // 2 - args.batch_size // 2:][: args.batch_size]
        _, slices = next(iter_batches(middle, args.context, args.batch_size))
        reference = model.predict(slices, verbose=0)
        variants = {}
        for variant, path in export.tflite_files.items():
            seconds, runtime, max_diff, agreement = time_tflite_per_slice(path, slices, reference)
            variants["float32" if variant == "none" else variant] = {
                "file_mb": round(path.stat().st_size / 2**20, 2),
                "ms_per_slice": round(1000 * seconds, 2),
                "gflop_per_s": round(gflop_per_slice / seconds, 1),
                "max_abs_diff_vs_keras": float(f"{max_diff:.3g}"),
                "label_agreement_vs_keras": round(agreement, 5),
                "runtime": runtime,
            }
        results["tflite_variants"] = variants
        peak_end = matmul_peak_gflops()
    results["matmul_peak_gflop_per_s"] = {"start": round(peak_start, 1), "end": round(peak_end, 1)}
    for volume_key, kind, network_gflops in runs:
        results[volume_key][kind]["network_share_of_matmul_peak"] = round(network_gflops / max(peak_start, peak_end), 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
