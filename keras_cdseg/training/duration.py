"""How long a run will take, said before step 1: the configured step timed on random slices, in a child process.

A child process because timing in the training process would start TensorFlow's runtime before the
strategy is chosen (`--cpu-replicas` must split the CPU first) and would shift Keras' layer-name counters
that the run's checkpoints rely on. Validation, caching and the end-of-training calibration come on top,
so the printed figure is the training steps' share, a lower bound.

    python -m keras_cdseg.training.duration RUN_CONFIG_JSON NUM_CLASSES   # prints seconds per step
"""

import json
import os
import statistics
import subprocess
import sys
import time

# The paper's schedule: about 51 hours on the 2-core CPU this project measured (1.84 s per step).
PAPER_STEPS = 100_000
CPU_RECIPE = "real-cpu"


def measure_step_seconds(run_config, num_classes, num_steps=3):
    """Median seconds of the run's train step (adversarial if configured) on random data, after one warm-up
    step that traces the graph. Runs in this process: call it from a process of its own."""
    import keras
    import numpy as np

    from keras_cdseg.training.trainer import build_model

    data, train_config = run_config.data, run_config.train
    class_names = ["background"] + [f"class{i}" for i in range(1, num_classes)]
    model = build_model(run_config, num_classes, class_names, synchronized=False, modality_names=["CT", "MR"])
    rng = np.random.default_rng(0)
    shape = (train_config.batch_size, data.image_size, data.image_size, data.num_channels)
    x = rng.random(shape, dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, num_classes, shape[:3]), num_classes).astype(np.float32)
    if run_config.model.architecture == "conditional":
        y = (y, np.eye(2, dtype=np.float32)[rng.integers(0, 2, shape[0])])
    times = []
    for _ in range(num_steps + 1):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def measure_in_child(run_config, num_classes, timeout_s=600):
    """`measure_step_seconds` in a child Python process; None if it fails or times out (never fatal)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    command = [sys.executable, "-m", "keras_cdseg.training.duration", json.dumps(run_config.to_dict()), str(num_classes)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        return float(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError, OSError):
        return None


def nvidia_driver_gpus():
    """GPU models the NVIDIA kernel driver lists (/proc/driver/nvidia/gpus), [] without it; no CUDA call."""
    from pathlib import Path

    names = []
    for information in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            lines = information.read_text(errors="replace").splitlines()
        except OSError:
            continue
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model:")), None)
        names.append(model or information.parent.name)
    return names


def format_duration(seconds):
    """`"51 h"`, `"1 h 05 min"`, `"7 min"`, `"40 s"`."""
    seconds = int(round(seconds))
    if seconds >= 10 * 3600:
        return f"{round(seconds / 3600)} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 120:
        return f"{round(seconds / 60)} min"
    return f"{seconds} s"


def duration_lines(steps, step_seconds, has_gpu, recipe=None, steps_done=0, data_dir="DIR", out_dir="RUN"):
    """What `cdseg train` prints before step 1: the expected time and, for the paper's schedule on a
    machine without a GPU, the CPU recipe."""
    lines = []
    remaining = max(0, steps - steps_done)
    if step_seconds is not None:
        lines.append(f"Expected: {remaining} steps x {step_seconds:.2f} s/step (measured here) = about "
                     f"{format_duration(remaining * step_seconds)} of training steps, plus validation")  # fmt: skip
    if not has_gpu and steps >= PAPER_STEPS and recipe != CPU_RECIPE:
        lines.append(f"Note: {steps} steps is the paper's GPU schedule; on this CPU-only machine use the CPU recipe: "
                     f"cdseg train --data {data_dir} --out {out_dir} --recipe {CPU_RECIPE}")  # fmt: skip
    return lines


def _main(argv):
    from keras_cdseg.config import RunConfig

    run_config = RunConfig.from_dict(json.loads(argv[0]))
    print(measure_step_seconds(run_config, int(argv[1])))


if __name__ == "__main__":
    _main(sys.argv[1:])
