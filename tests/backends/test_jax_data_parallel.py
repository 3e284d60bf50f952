"""`keras.distribution.DataParallel` on 2 virtual CPU devices equals 1 device with the whole batch (JAX).

Inside a JAX session with 2 host devices (`tests/test_jax_backend.py` starts one) the step runs in this
process; otherwise in a subprocess with `XLA_FLAGS=--xla_force_host_platform_device_count=2`.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")


def _num_devices():
    import jax

    return len(jax.devices())


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="runs in the JAX session of tests/test_jax_backend.py (2 host devices)"
)
def test_two_devices_match_one_device_with_the_whole_batch(tmp_path):
    out = tmp_path / "result.json"
    if _num_devices() >= 2:
        from tests.backends.jax_data_parallel import main

        main(str(out))
    else:
        _run_in_subprocess(out)
    check(json.loads(out.read_text()))


def _run_in_subprocess(out):
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=str(REPO),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tests.backends.jax_data_parallel", str(out)],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def check(result):
    assert result["mesh_devices"] == 2 and result["variable_devices"] == 2
    assert result["d_iterations"] == 1
    assert result["moved"] > 0.9 * result["num_weights"]
    worst = {name: excess for name, excess in result["max_excess"].items() if excess > 0}
    assert not worst, f"weights differ between 2 devices and 1 beyond rtol 1e-4, atol 2e-5: {worst}"
    for name, value in result["single_logs"].items():
        assert result["parallel_logs"][name] == pytest.approx(value, rel=1e-5), name
