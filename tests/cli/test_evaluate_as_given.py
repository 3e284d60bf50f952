"""`cdseg evaluate --pred/--ref` scores masks as given (CHAOS, nnU-Net, MONAI and surface-distance do);
`--largest-component CLASSES` opts in to the paper's post-processing; bad entries in PRED/REF are named."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial.distance import cdist

from cdseg.main import cli

SPACING_MM = (0.75, 1.25, 2.5)  # exact in the float32 NIfTI header
AFFINE = np.diag([*SPACING_MM, 1.0])


def _save(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.uint8), AFFINE), str(path))


def _masks():
    """A reference block; a prediction shifted by one voxel plus a distant 2-voxel island (two components)."""
    ref = np.zeros((30, 24, 10), np.uint8)
    ref[5:15, 5:15, 2:7] = 1
    body = np.zeros_like(ref)
    body[6:16, 5:15, 2:7] = 1
    island = np.zeros_like(ref)
    island[26:28, 20, 8] = 1
    return ref, body | island, body


def _border_points_mm(mask):
    """Surface voxels by definition (in the mask with a 6-neighbour outside it; outside the array counts as
    inside, CHAOS's border_value=1), as world coordinates in mm. Written independently of the package."""
    padded = np.pad(mask.astype(bool), 1, constant_values=True)
    inner = padded[1:-1, 1:-1, 1:-1]
    all_neighbours_in = np.ones_like(inner)
    for axis in range(3):
        for step in (-1, 1):
            all_neighbours_in &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(inner & ~all_neighbours_in) * np.asarray(SPACING_MM)


def _brute_force_distances_mm(mask_gt, mask_pred):
    """ASSD, RMSD and MSSD from every pair of surface points."""
    gt, pred = _border_points_mm(mask_gt), _border_points_mm(mask_pred)
    pairwise = cdist(gt, pred)
    pooled = np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])
    return {"assd_mm": pooled.mean(), "rmsd_mm": np.sqrt((pooled**2).mean()), "mssd_mm": pooled.max()}


def _evaluate(tmp_path, *extra):
    ref, pred, _ = _masks()
    _save(tmp_path / "ref" / "case.nii.gz", ref)
    _save(tmp_path / "pred" / "case.nii.gz", pred)
    out = tmp_path / f"report{len(list(tmp_path.glob('report*')))}"
    result = CliRunner().invoke(cli, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                                      "--out", str(out), "--no-overlays", "--quiet", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


def test_masks_are_scored_as_given_by_default(tmp_path):
    ref, pred, _ = _masks()
    report = _evaluate(tmp_path)
    liver = report["cases"][0]["classes"]["liver"]
    for key, value in _brute_force_distances_mm(ref == 1, pred == 1).items():
        assert liver[key] == pytest.approx(value, rel=1e-12), key
    assert liver["num_voxels_pred"] == int(np.count_nonzero(pred))
    assert liver["num_components_pred"] == 2 and liver["largest_component"] is False
    assert "num_components_pred_before" not in liver
    assert report["settings"]["largest_component_classes"] == []
    per_case = (tmp_path / "report0" / "per_case.csv").read_text().splitlines()
    header = per_case[0].split(",")
    assert per_case[1].split(",")[header.index("num_components_pred")] == "2"


def test_largest_component_is_opt_in_and_equals_scoring_the_largest_island(tmp_path):
    ref, pred, largest = _masks()
    report = _evaluate(tmp_path, "--largest-component", "liver")
    liver = report["cases"][0]["classes"]["liver"]
    for key, value in _brute_force_distances_mm(ref == 1, largest == 1).items():
        assert liver[key] == pytest.approx(value, rel=1e-12), key
    assert liver["num_components_pred"] == 1 and liver["num_components_pred_before"] == 2
    assert liver["largest_component"] is True
    assert report["settings"]["largest_component_classes"] == ["liver"]
    # The island is far from the liver: keeping it changes MSSD, which is why the as-given default matters.
    as_given = _brute_force_distances_mm(ref == 1, pred == 1)
    assert as_given["mssd_mm"] > 2 * liver["mssd_mm"]


def _assert_named_error(result, path, fragment):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert str(path) in lines[0] and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("folder", ["pred", "ref"])
@pytest.mark.parametrize(
    "make_bad, fragment",
    [
        (lambda path: os.symlink(path.parent / "missing_target.nii.gz", path), "broken symbolic link"),
        (lambda path: path.mkdir(), "is a folder, not a NIfTI file"),
        (lambda path: os.mkfifo(path), "is not a regular file"),
        (lambda path: path.write_bytes(b""), "not a readable NIfTI file"),
    ],
    ids=["broken_link", "folder", "fifo", "empty_file"],
)
def test_bad_entries_are_named(tmp_path, folder, make_bad, fragment):
    ref, pred, _ = _masks()
    for name in ("a", "b"):
        _save(tmp_path / "ref" / f"{name}.nii.gz", ref)
        _save(tmp_path / "pred" / f"{name}.nii.gz", pred)
    bad = tmp_path / folder / "b.nii.gz"
    bad.unlink()
    make_bad(bad)
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                                      "--out", str(out), "--quiet"])  # fmt: skip
    _assert_named_error(result, bad, fragment)
    assert not out.exists() and not list(tmp_path.glob(".report*"))


def test_largest_component_options_conflict(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "--pred", str(tmp_path), "--ref", str(tmp_path),
                                      "--largest-component", "liver", "--no-largest-component"])  # fmt: skip
    assert result.exit_code == 2 and "not both" in result.output
