"""`cdseg predict scan -o seg.nii.gz` writes exactly that file (statistics in seg.json), as TotalSegmentator
does for one multi-label output; several inputs with such an -o are a one-line error."""

import json
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
    root = tmp_path_factory.mktemp("predict_output_file")
    make_run_dir(root / "run")
    affine = affine_for("LPS", (3.5, 3.0, 5.0), SHAPE)
    for i in range(2):
        image, _ = blob_image(SHAPE, affine, seed=i)
        write_nifti(root / "scans" / f"scan_{i}.nii.gz", image, affine)
    return root


def _predict(workspace, *args):
    return CliRunner().invoke(cli, ["predict", *map(str, args), "--model", str(workspace / "run")])


@pytest.mark.parametrize("name", ["seg.nii.gz", "seg.nii", "SEG.NII.GZ"])
def test_one_input_writes_exactly_the_named_file_on_the_input_grid(workspace, tmp_path, name):
    scan = workspace / "scans" / "scan_0.nii.gz"
    out = tmp_path / "results" / "sub" / name  # missing folders are created
    result = _predict(workspace, scan, "-o", out, "--preview", "--probabilities")
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".gz") else name[: -len(".nii")]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [name, f"{stem}.json", f"{stem}_preview.png", f"{stem}_probabilities.nii.gz"]
    )
    assert out.is_file()
    written, source = nib.load(str(out)), nib.load(str(scan))
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(written.affine, source.affine)
    assert int(written.header["qform_code"]) == int(source.header["qform_code"])
    assert int(written.header["sform_code"]) == int(source.header["sform_code"])
    record = json.loads((out.parent / f"{stem}.json").read_text())
    assert list(record["cases"]) == ["scan_0"]
    assert record["cases"]["scan_0"]["outputs"]["labels"] == str(out)
    # The same labels as the folder layout writes.
    folder = tmp_path / "folder"
    assert _predict(workspace, scan, "-o", folder).exit_code == 0
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(nib.load(str(folder / "scan_0.nii.gz")).dataobj))


def test_existing_file_needs_overwrite(workspace, tmp_path):
    scan = workspace / "scans" / "scan_0.nii.gz"
    out = tmp_path / "seg.nii.gz"
    assert _predict(workspace, scan, "-o", out).exit_code == 0
    before = out.read_bytes()
    result = _predict(workspace, scan, "-o", out)
    assert result.exit_code == 2 and "output exists; pass --overwrite" in result.output
    assert out.read_bytes() == before
    assert _predict(workspace, scan, "-o", out, "--overwrite").exit_code == 0


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_several_inputs_with_a_file_output_are_refused_before_loading_the_model(workspace, tmp_path):
    out = tmp_path / "seg.nii.gz"
    result = CliRunner().invoke(cli, ["predict", str(workspace / "scans"), "-o", str(out),
                                      "--model", str(tmp_path / "no_such_model")])  # fmt: skip
    _assert_one_line_error(result, str(out), "inputs hold 2 cases", "give a folder")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_with_a_nifti_name_is_refused(workspace, tmp_path):
    out = tmp_path / "seg.nii.gz"
    out.mkdir()
    _assert_one_line_error(_predict(workspace, workspace / "scans" / "scan_0.nii.gz", "-o", out), "is a folder")
    assert list(out.iterdir()) == []


def test_an_output_without_nifti_suffix_stays_a_folder(workspace, tmp_path):
    out = tmp_path / "seg.out"
    assert _predict(workspace, workspace / "scans" / "scan_0.nii.gz", "-o", out).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["scan_0.nii.gz", "statistics.json"]
