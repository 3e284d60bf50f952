"""Input pipeline speed against the speed a training step consumes slices; prints JSON.

Measures, on one machine in one run:
- `prepare_volume` on a 512×512×100 CT-like volume (and the NIfTI load before it);
- random 2T+1-slice reads from the memory-mapped volume cache, warm (page cache) and cold (pages dropped
  with posix_fadvise, so the disk is read);
- `make_training_dataset` slices/s with and without augmentation;
- the slices/s one training step consumes: the adversarial `CrossDomainModel` step with the lead's
  `build_segmenter` (or `--step-slices-per-s` when given);
and reports pipeline / step ratios (target >= 5).

    python benchmarks/bench_pipeline.py --batches 20
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--batches", type=int, default=20, help="pipeline batches timed (after 3 warm-up batches)")
    parser.add_argument("--num-cases", type=int, default=4, help="cases in the benchmark dataset (half CT, half MR)")
    parser.add_argument("--num-slices", type=int, default=60, help="slices per benchmark case")
    parser.add_argument("--reads", type=int, default=600, help="random cache reads timed")
    parser.add_argument("--step-slices-per-s", type=float, default=None, help="use this instead of timing a step")
    parser.add_argument("--step-batches", type=int, default=3, help="training steps timed (after 1 warm-up)")
    parser.add_argument("--preset", default="paper", help="segmenter preset for the timed step")
    parser.add_argument("--workdir", default=None, help="where the dataset and cache go (default: a temp dir)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from keras_cdseg.config import DataConfig

    config = DataConfig(image_size=args.image_size, context=args.context)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_pipeline_"))
    results = {"settings": {**vars(args), "cpu_count": os.cpu_count(), "workdir": str(workdir)}}
    results["prepare_volume"] = time_prepare(workdir, config)
    cache, index = build_benchmark_cache(workdir, config, args.num_cases, args.num_slices, results)
    results["cache_read_slices_per_s"] = time_cache_reads(cache, args.context, args.reads)
    results["pipeline_slices_per_s"] = time_pipeline(cache, config, args.batch_size, args.batches)
    if args.step_slices_per_s is not None:
        step, source = args.step_slices_per_s, "--step-slices-per-s"
    else:
        step, source = time_training_step(config, args.batch_size, args.step_batches, args.preset, len(index.labels))
    results["train_step_slices_per_s"] = step
    results["train_step_source"] = source
    results["ratio_pipeline_to_step"] = {name: value / step for name, value in results["pipeline_slices_per_s"].items()}
    results["target_ratio"] = 5.0
    results["meets_target"] = all(r >= 5.0 for r in results["ratio_pipeline_to_step"].values())
    json.dump(results, sys.stdout, indent=2, default=float)
    print()


def synthetic_volume(shape, spacing_mm, rng, modality):
    """A body ellipse with a 'liver' blob: enough structure for realistic percentiles and labels."""
    i, j = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape[:2]], indexing="ij")
    body = (i / 0.9) ** 2 + (j / 0.7) ** 2 <= 1
    liver = ((i + 0.3) / 0.35) ** 2 + ((j - 0.2) / 0.3) ** 2 <= 1
    label = np.repeat(liver[:, :, None], shape[2], axis=2).astype(np.uint8)
    label[:, :, : shape[2] // 5] = 0
    if modality == "CT":
        image = np.where(body, 40.0, -1000.0)[:, :, None] + 20.0 * label + rng.normal(0, 15, shape)
        image = image.astype(np.int16)
        affine = np.diag([*spacing_mm, 1.0])
    else:
        image = (np.where(body, 300.0, 5.0)[:, :, None] + 150.0 * label + rng.normal(0, 20, shape)).astype(np.float32)
        affine = np.diag([-spacing_mm[0], -spacing_mm[1], spacing_mm[2], 1.0])  # LPS, as many MR files are
    return image, label, affine


def time_prepare(workdir, config):
    from keras_cdseg.data.nifti_io import load_image, save_array
    from keras_cdseg.data.preprocessing import prepare_volume

    image, _, affine = synthetic_volume((512, 512, 100), (0.7, 0.7, 2.5), np.random.default_rng(0), "CT")
    path = workdir / "ct_512x512x100.nii.gz"
    save_array(image, affine, path)
    started = time.perf_counter()
    volume = load_image(path)
    loaded = time.perf_counter()
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        prepared = prepare_volume(volume, config)
        timings.append(time.perf_counter() - t0)
    path.unlink()
    return {
        "shape": list(volume.shape),
        "load_nifti_gz_s": round(loaded - started, 3),
        "prepare_s_best_of_3": round(min(timings), 3),
        "prepared_shape": list(prepared.image.shape),
    }


def build_benchmark_cache(workdir, config, num_cases, num_slices, results):
    from keras_cdseg.data.cache import build_cache
    from keras_cdseg.data.dataset import Case, load_dataset, write_dataset_json
    from keras_cdseg.data.nifti_io import save_array

    root = workdir / "dataset"
    rng = np.random.default_rng(1)
    cases = []
    for i in range(num_cases):
        modality = "CT" if i % 2 == 0 else "MR"
        if modality == "CT":
            shape, spacing = (512, 512, num_slices), (0.7, 0.7, 2.5)
        else:
            shape, spacing = (256, 256, num_slices), (1.6, 1.6, 6.0)
        image, label, affine = synthetic_volume(shape, spacing, rng, modality)
        case_id = f"{modality.lower()}_{i:03d}"
        case = Case(case_id, root / "imagesTr" / f"{case_id}.nii.gz", root / "labelsTr" / f"{case_id}.nii.gz", modality)
        if not case.image.exists():
            save_array(image, affine, case.image)
            save_array(label, affine, case.label)
        cases.append(case)
    write_dataset_json(root, "bench", {"background": 0, "liver": 1}, cases, [])
    index = load_dataset(root)
    started = time.perf_counter()
    cache = build_cache(index, config, workdir / "cache", progress=False)
    results["cache_build_s_per_case"] = round((time.perf_counter() - started) / num_cases, 3)
    return cache, index


def time_cache_reads(cache, context, num_reads):
    """Random 2T+1-slice stacks copied out of the memory-mapped cache, warm and cold."""
    rng = np.random.default_rng(2)
    case_ids = cache.case_ids
    picks = [(case_ids[rng.integers(len(case_ids))], None) for _ in range(num_reads)]
    picks = [(c, int(rng.integers(cache.entry(c).num_slices))) for c, _ in picks]

    def run(picks=picks):
        started = time.perf_counter()
        total = 0.0
        for case_id, s in picks:
            volume = cache.image(case_id)
            stack = np.array(volume[max(s - context, 0) : s + context + 1])
            label = np.array(cache.label(case_id)[s])
            total += float(stack[0, 0, 0]) + float(label[0, 0])
        return len(picks) / (time.perf_counter() - started)

    run()  # warms the page cache and the open-file table
    warm = run()
    cache.close()  # unmap first: pages still mapped by this process are not dropped
    if hasattr(os, "posix_fadvise"):
        for path in cache.cache_dir.glob("*.npy"):
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)  # dirty pages (freshly written cache) cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    # Cold: every slice once, in random order, so no read finds pages an earlier read brought in
    # (except the 2T neighbours it shares with adjacent slices).
    every_slice = [(c, s) for c in case_ids for s in range(cache.entry(c).num_slices)]
    cold = run([every_slice[i] for i in rng.permutation(len(every_slice))[:num_reads]])
    return {"warm": round(warm, 1), "cold_after_fadvise_dontneed": round(cold, 1)}


def time_pipeline(cache, config, batch_size, num_batches):
    from keras_cdseg.data.pipeline import make_training_dataset

    rates = {}
    for name, augment in (("augment", True), ("no_augment", False)):
        dataset = make_training_dataset(cache, cache.case_ids, config, batch_size=batch_size, seed=0, augment=augment)
        iterator = iter(dataset)
        for _ in range(3):
            next(iterator)
        started = time.perf_counter()
        for _ in range(num_batches):
            x, y = next(iterator)
        _ = float(x[0, 0, 0, 0]) + float(y[0, 0, 0, 0])
        rates[name] = round(num_batches * batch_size / (time.perf_counter() - started), 1)
    return rates


def time_training_step(config, batch_size, num_steps, preset, num_classes):
    """Slices/s of the adversarial training step (generator + discriminator update) on a fixed batch."""
    import keras

    from keras_cdseg.models.cross_domain_model import CrossDomainModel
    from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

    size = config.image_size
    generator = build_segmenter((size, size, config.num_channels), num_classes=num_classes, preset=preset)
    model = CrossDomainModel(generator, build_discriminator())
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=1e-3)
    rng = np.random.default_rng(3)
    x = rng.random((batch_size, size, size, config.num_channels), dtype=np.float32)
    y = np.eye(num_classes, dtype=np.float32)[rng.integers(num_classes, size=(batch_size, size, size))]
    model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(num_steps):
        model.train_on_batch(x, y)
    rate = num_steps * batch_size / (time.perf_counter() - started)
    source = f"measured: CrossDomainModel(build_segmenter(preset={preset!r}), build_discriminator()), CAN step"
    return round(rate, 2), source


if __name__ == "__main__":
    main()
