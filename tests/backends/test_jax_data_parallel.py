"""`keras.distribution.DataParallel` on 2 virtual CPU devices equals 1 device with the whole batch (JAX)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")


def test_two_devices_match_one_device_with_the_whole_batch(tmp_path):
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=str(REPO),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.backends.jax_data_parallel", str(out)],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mesh_devices"] == 2 and result["variable_devices"] == 2
    assert result["d_iterations"] == 1
    assert result["moved"] > 0.9 * result["num_weights"]
    worst = {name: excess for name, excess in result["max_excess"].items() if excess > 0}
    assert not worst, f"weights differ between 2 devices and 1 beyond rtol 1e-4, atol 2e-5: {worst}"
    for name, value in result["single_logs"].items():
        assert result["parallel_logs"][name] == pytest.approx(value, rel=1e-5), name
