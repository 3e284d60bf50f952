"""`cdseg predict`: model resolution, outputs, statistics, and bad input as one-line exit-2 errors."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from cdseg.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_fixtures import affine_for, blob_image, make_run_dir, write_nifti  # noqa: E402

SHAPE = (30, 26, 9)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A run directory, its export as saved_models/cdseg/1 and /2, and two scans."""
    from keras_cdseg.deploy.export import export_model

    root = tmp_path_factory.mktemp("predict_cli")
    run_dir = make_run_dir(root / "run")
    export_model(run_dir, root=root / "saved_models", tflite=True)
    shutil.copytree(root / "saved_models" / "cdseg" / "1", root / "saved_models" / "cdseg" / "2")
    affine = affine_for("LPS", (3.5, 3.0, 5.0), SHAPE)
    for i in range(2):
        image, _ = blob_image(SHAPE, affine, seed=i)
        write_nifti(root / "scans" / f"scan_{i}.nii.gz", image, affine)
    return root


def _run(args, cwd):
    return CliRunner().invoke(cli, ["predict", *map(str, args)], catch_exceptions=False)


def test_without_model_the_highest_exported_version_is_used(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(workspace)
    out = tmp_path / "out"
    result = _run(["scans", "-o", out, "--preview"], workspace)
    assert result.exit_code == 0, result.output
    assert "Model: saved_models/cdseg/2 (highest version under saved_models/)" in result.output
    assert re.search(r"^scan_0\b.*\bliver\b", result.output, re.M) and "Wrote 2 case(s)" in result.output
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["cases"]["scan_1"]["model"] == "saved_model saved_models/cdseg/2"
    for i in range(2):
        output = nib.load(str(out / f"scan_{i}.nii.gz"))
        assert output.shape == SHAPE and output.get_data_dtype() == np.uint8
        assert (out / f"scan_{i}_preview.png").is_file()


@pytest.mark.parametrize("model", ["run", "run/best_generator.keras", "saved_models/cdseg/1",
                                   "saved_models/cdseg/1/cdseg.tflite"])  # fmt: skip
def test_every_model_kind_segments_the_same(workspace, tmp_path, model):
    out = tmp_path / "out"
    result = _run([workspace / "scans" / "scan_0.nii.gz", "-o", out, "--model", workspace / model,
                   "--batch-size", "4", "--no-postprocess"], workspace)  # fmt: skip
    assert result.exit_code == 0, result.output
    labels = np.asarray(nib.load(str(out / "scan_0.nii.gz")).dataobj)
    reference_out = tmp_path / "reference"
    _run([workspace / "scans" / "scan_0.nii.gz", "-o", reference_out, "--model", workspace / "run",
          "--no-postprocess"], workspace)  # fmt: skip
    reference = np.asarray(nib.load(str(reference_out / "scan_0.nii.gz")).dataobj)
    # TFLite may flip voxels whose two probabilities are within 1e-4 of each other; the others match exactly.
    assert np.count_nonzero(labels != reference) <= (labels.size // 1000 if model.endswith(".tflite") else 0)


def test_bad_inputs_are_one_line_errors_and_write_nothing(workspace, tmp_path):
    bad = write_nifti(tmp_path / "flat.nii.gz", np.ones((6, 6), np.int16), np.eye(4))
    model = ["--model", workspace / "saved_models" / "cdseg" / "1"]
    out = tmp_path / "out"
    for args, message in [
        ([workspace / "scans", bad, "-o", out, *model], "expected a 3D volume, got 2D"),
        ([tmp_path / "missing.nii.gz", "-o", out, *model], "input not found"),
        ([workspace / "scans", "-o", out, "--model", tmp_path], "not a model"),
        ([], "give at least one"),
    ]:
        result = _run(args, workspace)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
        assert not out.exists()
    assert _run([workspace / "scans", "-o", out, *model], workspace).exit_code == 0
    again = _run([workspace / "scans", "-o", out, *model], workspace)
    assert again.exit_code == 2 and "pass --overwrite" in again.output
    assert _run([workspace / "scans", "-o", out, *model, "--overwrite"], workspace).exit_code == 0


def test_installed_script_lists_the_predict_options():
    result = subprocess.run(["cdseg", "predict", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--model", "--probabilities", "--no-postprocess", "--preview", "--overwrite", "--batch-size"):
        assert option in result.stdout
