"""`KERAS_BACKEND=jax cdseg train` end to end: .npz checkpoints, bit-for-bit resume after SIGKILL, validation,
history, TensorBoard scalars; its run exported under TensorFlow and `cdseg predict` on JAX and TensorFlow
giving the same labels. The JAX processes are `cdseg` subprocesses; this process keeps its own backend.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from keras_cdseg.training.callbacks import read_history

REPO = Path(__file__).resolve().parents[2]
STEPS, VAL_EVERY, CHECKPOINT_EVERY = 12, 6, 2
TINY_FLAGS = [
    "--image-size", "32", "--target-spacing", "12", "--preset", "unet", "--base-filters", "4", "--depth", "2",
    "--norm", "batch", "--batch-size", "2", "--no-augment", "--seed", "1", "--val-max-cases", "1",
    "--steps", str(STEPS), "--val-every", str(VAL_EVERY), "--checkpoint-every", str(CHECKPOINT_EVERY), "--verbose", "0",
    "--no-quality-calibration",  # covered by tests/inference/quality; here it only adds minutes per run
]  # fmt: skip

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")


def cdseg(*args, backend="jax"):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "cdseg.main", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=REPO,
    )  # fmt: skip


def finish(process, timeout=400):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def checkpoint_arrays(run_dir, step):
    with np.load(run_dir / "checkpoints" / f"ckpt-{step}.npz") as saved:
        return {key: saved[key] for key in saved.files}


@pytest.fixture(scope="module")
def jax_runs(tiny_dataset, tmp_path_factory):
    """(uninterrupted run, run killed with SIGKILL and resumed, kill step): both trained under JAX."""
    root = tmp_path_factory.mktemp("jax_runs")
    reference, killed = root / "reference", root / "killed"
    first = cdseg("train", "--data", str(tiny_dataset), "--out", str(reference), *TINY_FLAGS)
    finish(first)
    process = cdseg("train", "--data", str(tiny_dataset), "--out", str(killed), *TINY_FLAGS)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "ckpt-4.npz").exists():
        assert process.poll() is None, process.stdout.read()[-4000:]
        assert time.time() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps = sorted(int(p.stem.split("-")[1]) for p in (killed / "checkpoints").glob("ckpt-*.npz"))
    assert steps and steps[-1] < STEPS, "the run finished before it could be killed: the test proves nothing"
    output = finish(cdseg("train", "--resume", str(killed), "--verbose", "0"))
    assert f"resuming at step {steps[-1]} of {STEPS}" in output
    return reference, killed, steps[-1]


def test_jax_run_writes_checkpoints_history_and_tensorboard_scalars(jax_runs):
    reference, _, _ = jax_runs
    config = json.loads((reference / "config.json").read_text())
    assert config["resolved"]["backend"] == "jax" and "jax" in config["versions"]
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps_done"] == STEPS
    history = read_history(reference / "history.csv")
    assert [row["step"] for row in history] == [6, 12]
    assert {"seg_loss", "d_loss", "g_adv_loss", "val_score", "val_dice_liver_CT", "val_dice_liver_MR"} <= set(history[0])
    assert all(np.isfinite(row["seg_loss"]) for row in history)
    # The newest 3 checkpoints are kept; no temporary file is left behind.
    assert sorted(p.name for p in (reference / "checkpoints").iterdir()) == ["ckpt-10.npz", "ckpt-12.npz", "ckpt-8.npz"]
    saved = checkpoint_arrays(reference, 12)
    assert int(saved["__step__"]) == 12
    assert any(k.startswith("d_optimizer/") for k in saved) and any(k.startswith("g_optimizer/") for k in saved)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(reference / "logs")).Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert {"seg_loss", "val_score"} <= tags, tags


def test_resume_after_sigkill_is_bit_for_bit(jax_runs):
    reference, killed, kill_step = jax_runs
    assert 4 <= kill_step < STEPS
    expected, resumed = checkpoint_arrays(reference, STEPS), checkpoint_arrays(killed, STEPS)
    assert set(resumed) == set(expected)
    different = [key for key in expected if not np.array_equal(expected[key], resumed[key])]
    assert not different, f"resumed run differs from the uninterrupted one in {different[:5]}"
    assert [row["step"] for row in read_history(killed / "history.csv")] == [6, 12]


def test_export_under_tensorflow_and_predict_on_both_backends_agree(jax_runs, tiny_dataset, tmp_path):
    """The JAX run's .keras generator predicted on JAX equals its TensorFlow export (SavedModel) predicted on
    TensorFlow: `cdseg predict` gives the same labels on both backends, and export keeps them."""
    reference, _, _ = jax_runs
    scan = sorted((tiny_dataset / "imagesTs").glob("*.nii.gz"))[0]
    root = tmp_path / "saved_models"
    finish(cdseg("export", str(reference), "--root", str(root), backend="tensorflow"))
    labels = {}
    for backend, model in (("jax", reference), ("tensorflow", root / "cdseg" / "1")):
        out = tmp_path / backend
        finish(cdseg("predict", str(scan), "--model", str(model), "-o", str(out), "--no-quality", backend=backend))
        labels[backend] = np.asarray(nib.load(out / scan.name).dataobj)
    np.testing.assert_array_equal(labels["jax"], labels["tensorflow"])
    assert labels["jax"].any(), "an empty segmentation would agree trivially"
