"""The real-cpu recipe on a few real scans (../shared/data/abdomen_ct_mr): import two sources, train, loss falls.

Skipped where the shared real data is absent (a user's clone); CI has it. Sizes are cut down (64 px at 5 mm,
a 2-level U-Net, 60 steps) so the test takes seconds; everything else is the recipe: CE + Dice, poly decay,
organ-balanced sampling, the "real" augmentation, the adversarial loss.
"""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.training.callbacks import read_history
from keras_cdseg.run_dir import load_run

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "abdomen_ct_mr"
pytestmark = pytest.mark.skipif(
    not (REAL / "ct" / "images").is_dir(), reason=f"real CT + MR scans not found at {REAL} (shared data is absent)"
)
CASES = {"ct": ["btcv_ct_01", "btcv_ct_03"], "mr": ["chaos_t2_02", "chaos_t2_05"]}


def _subset(tmp_path, modality):
    root = tmp_path / modality
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
        for case in CASES[modality]:
            os.symlink(REAL / modality / sub / f"{case}.nii.gz", root / sub / f"{case}.nii.gz")
    return root


def test_real_cpu_recipe_loss_falls_on_real_ct_and_mr(tmp_path):
    runner = CliRunner()
    dataset = tmp_path / "abdomen"
    result = runner.invoke(cli, [
        "preprocess", str(_subset(tmp_path, "ct")), str(_subset(tmp_path, "mr")), str(dataset),
        "--modality", "CT", "--modality", "MR", "--labels", "liver=1,right_kidney=2,left_kidney=3,spleen=4", "-q",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "run"
    result = runner.invoke(cli, [
        "train", "--data", str(dataset), "--out", str(run_dir), "--recipe", "real-cpu",
        "--image-size", "64", "--target-spacing", "5", "--base-filters", "8", "--depth", "2", "--batch-size", "4",
        "--steps", "60", "--val-every", "20", "--checkpoint-every", "60", "--val-fraction", "0",
        "--no-quality-calibration", "--verbose", "0",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    run = load_run(run_dir)
    assert run.config.recipe == "real-cpu"
    assert (run.config.train.loss, run.config.train.sampling, run.config.train.augmentation) == ("ce_dice", "organs", "real")
    rows = read_history(run_dir / "history.csv")
    losses = [float(row["seg_loss"]) for row in rows]
    assert len(losses) == 3
    assert losses[-1] < 0.8 * losses[0], losses
