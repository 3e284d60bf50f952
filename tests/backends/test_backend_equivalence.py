"""One adversarial SGD step from the same weights and batch gives the same update on every backend.

The Keras backend is fixed per process: this process runs the reference step on its own backend, and
`backend_step.py` runs the same step under each other installed backend in a subprocess.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.backends.backend_step import batch_of, build, get_state, set_state

SCRIPT = Path(__file__).with_name("backend_step.py")
REPO = Path(__file__).resolve().parents[2]
OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != keras.backend.backend()]


KINDS = ("cross_domain", "conditional")


def run_backend(backend, pairs, timeout=300):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    args = [str(path) for pair in pairs for path in pair]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    assert proc.returncode == 0, f"{backend} step failed:\n{proc.stderr[-3000:]}"
    return [dict(np.load(out_path)) for _, out_path in pairs]


def reference_case(kind):
    keras.utils.set_random_seed(1)
    model = build(kind)
    rng = np.random.default_rng(4)
    case = {"kind": np.array(kind), "x": rng.random((4, 32, 32, 3), dtype="float32")}
    case["y"] = np.eye(2, dtype="float32")[(case["x"][..., 1] > 0.55).astype(int)]
    if kind == "conditional":
        case["m"] = np.eye(2, dtype="float32")[[0, 1, 1, 0]]
    case.update(get_state(model))
    return model, case


@pytest.fixture(scope="module")
def stepped(tmp_path_factory):
    """`{(kind, backend): (case, this backend's model, the other backend's OUT arrays)}`, one subprocess per backend."""
    tmp = tmp_path_factory.mktemp("backend_step")
    cases = {kind: reference_case(kind) for kind in KINDS}
    for kind, (_, case) in cases.items():
        np.savez(tmp / f"{kind}.npz", **case)
    results = {}
    for backend in OTHER_BACKENDS:
        if importlib.util.find_spec(backend) is None:
            continue
        pairs = [(tmp / f"{kind}.npz", tmp / f"{kind}_{backend}.npz") for kind in KINDS]
        for kind, out in zip(KINDS, run_backend(backend, pairs)):
            results[(kind, backend)] = out
    return cases, results


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
def test_one_adversarial_step_matches_across_backends(kind, backend, stepped):
    cases, results = stepped
    if (kind, backend) not in results:
        pytest.skip(f"backend {backend!r} is not installed")
    model, case = cases[kind]
    other = results[(kind, backend)]
    assert str(other["backend"]) == backend

    set_state(model, case)
    logs = model.train_on_batch(*batch_of(case), return_dict=True)
    mine = get_state(model)
    moved = 0
    for name, value in mine.items():
        assert value.shape == other[name].shape, name
        # rtol 1e-4; the absolute floor covers weights that are ~0 (float32 sums in another order).
        np.testing.assert_allclose(other[name], value, rtol=1e-4, atol=2e-5, err_msg=f"{kind} {name} on {backend}")
        moved += not np.array_equal(value, case[name])
    assert moved > 0.9 * len(mine), "the step left most weights unchanged: nothing was compared"
    for name, value in logs.items():
        np.testing.assert_allclose(float(other[f"log_{name}"]), float(value), rtol=1e-4, err_msg=name)
