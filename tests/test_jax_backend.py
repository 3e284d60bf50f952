"""The core tests (layers, models, the JAX data-parallel step) pass on the JAX backend too.

The Keras backend is fixed per process, so they run in a pytest subprocess with `KERAS_BACKEND=jax` and
two virtual host devices (`XLA_FLAGS=--xla_force_host_platform_device_count=2`) for DataParallel. Tests
that are TensorFlow-only by nature (MirroredStrategy, tf.train.Checkpoint, tf.GradientTape) skip themselves
there with a reason.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parents[1]
CORE_TESTS = ["tests/layers", "tests/models", "tests/backends/test_jax_data_parallel.py"]
# Left out on JAX to keep the session short: backend-independent layer-graph checks and a 30-epoch fit
# whose per-step update is covered on JAX by tests/backends/test_backend_equivalence.py.
DESELECTED = [
    "tests/models/test_attention_unet.py::test_attention_segmenter_is_the_segmenter_plus_one_gate_per_skip",
    "tests/models/test_conditional_domain_model.py::test_modality_loss_decreases_on_an_easy_task_and_inference_needs_only_slices",
]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
@pytest.mark.skipif(keras.backend.backend() == "jax", reason="this session already runs on JAX")
def test_core_tests_pass_on_the_jax_backend():
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(REPO),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *CORE_TESTS,
         *[f"--deselect={test}" for test in DESELECTED]],
        env=env, capture_output=True, text=True, timeout=1200, cwd=REPO,
    )  # fmt: skip
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
    assert proc.returncode == 0, f"core tests failed on JAX:\n{tail}"
    assert " passed" in tail and "failed" not in tail, tail
