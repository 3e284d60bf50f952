"""`cdseg evaluate --pred --ref`: reports on tiny NIfTI folders, and bad input as one-line exit-2 errors."""

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.data.dataset import Case, write_dataset_json

AFFINE = np.diag([0.9, 0.9, 2.5, 1.0])
REAL_DATA = Path(__file__).parents[1] / "data" / "real"


def _save(path, data, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def _labels(shift=0, shape=(24, 20, 8)):
    data = np.zeros(shape, np.uint8)
    data[4 + shift : 16 + shift, 4:16, 1:7] = 1
    data[18:22, 14:18, 2:6] = 2
    return data


def _folders(tmp_path, num_cases=2):
    for i in range(num_cases):
        _save(tmp_path / "ref" / f"case_{i}.nii.gz", _labels())
        _save(tmp_path / "pred" / f"case_{i}.nii.gz", _labels(shift=i))
    return tmp_path / "pred", tmp_path / "ref"


def _run(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_writes_the_three_reports_and_overlays(tmp_path):
    pred_dir, ref_dir = _folders(tmp_path)
    result = _run("--pred", pred_dir, "--ref", ref_dir, "--labels", "liver=1,spleen=2", "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert "liver: overall score (chaos) all 100.00" not in result.output  # case_1 is shifted
    assert "spleen: overall score (chaos) all 100.00" in result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [c["case_id"] for c in report["cases"]] == ["case_0", "case_1"]
    assert report["cases"][1]["classes"]["liver"]["mssd_mm"] == pytest.approx(0.9, abs=1e-6)
    assert report["settings"]["ref_dir"] == str(ref_dir.resolve())
    assert (tmp_path / "rep" / "per_case.csv").read_text().count("\n") == 1 + 4
    assert "## Per case" in (tmp_path / "rep" / "report.md").read_text()
    assert sorted(p.name for p in (tmp_path / "rep" / "overlays").iterdir()) == ["case_0.png", "case_1.png"]


def test_default_labels_output_directory_and_options(tmp_path):
    pred_dir, ref_dir = _folders(tmp_path, num_cases=1)
    result = _run("--pred", pred_dir, "--ref", ref_dir, "--scoring", "sliver07", "--no-largest-component",
                  "--no-overlays", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "pred_evaluation" / "report.json").read_text())
    assert report["settings"]["labels"] == {"liver": 1}
    assert report["settings"]["largest_component_classes"] == []
    assert report["settings"]["scoring"] == "sliver07"
    assert not (tmp_path / "pred_evaluation" / "overlays").exists()
    assert "evaluate 1/1" not in result.output


def test_modality_groups_from_dataset_json(tmp_path):
    root = tmp_path / "ds"
    cases = []
    for i, (case_id, modality) in enumerate((("ct_1", "CT"), ("mr_1", "MR"))):
        image = _save(root / "imagesTs" / f"{case_id}.nii.gz", np.random.default_rng(i).normal(size=(24, 20, 8)))
        label = _save(root / "labelsTs" / f"{case_id}.nii.gz", _labels())
        _save(tmp_path / "pred" / f"{case_id}.nii.gz", _labels(shift=i))
        cases.append(Case(case_id, image, label, modality))
    write_dataset_json(root, "toy", {"background": 0, "liver": 1, "spleen": 2}, training=[], test=cases)
    result = _run("--pred", tmp_path / "pred", "--ref", root / "labelsTs", "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert "liver: overall score (chaos) all" in result.output and "CT 100.00" in result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert list(report["summary"]["spleen"]) == ["all", "CT", "MR"]
    assert "(CT / MR)" in (tmp_path / "rep" / "report.md").read_text()


def test_real_ct_organs_with_a_shifted_liver(tmp_path):
    # TotalSegmentator example (see tests/data/real/NOTICE): liver = 5, spleen = 1, 3 mm isotropic voxels;
    # the liver touches the first and last axial slices, which exercises the border_value=1 convention.
    ref = nib.load(str(REAL_DATA / "ct_abdomen_3mm_organs.nii.gz"))
    labels = np.asarray(ref.dataobj).astype(np.uint8)
    shifted = labels.copy()
    shifted[labels == 5] = 0
    shifted[1:][labels[:-1] == 5] = 5
    (tmp_path / "ref").mkdir()
    shutil.copy(REAL_DATA / "ct_abdomen_3mm_organs.nii.gz", tmp_path / "ref" / "ct.nii.gz")
    _save(tmp_path / "pred" / "ct.nii.gz", shifted, ref.affine)
    result = _run("--pred", tmp_path / "pred", "--ref", tmp_path / "ref", "--labels", "liver=5,spleen=1",
                  "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    case = json.loads((tmp_path / "rep" / "report.json").read_text())["cases"][0]["classes"]
    # Each reference surface voxel p has p + (1, 0, 0) on the predicted surface, one 3 mm voxel away.
    assert case["liver"]["mssd_mm"] == pytest.approx(3.0)
    assert 0 < case["liver"]["assd_mm"] < 3.0 and case["liver"]["rvd_percent"] == 0.0
    # Uncropped textbook computation on the real volume gives the same ASSD.
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, 1)
    borders = [m ^ ndimage.binary_erosion(m, structure, border_value=1) for m in (labels == 5, shifted == 5)]
    distances = [ndimage.distance_transform_edt(~b, sampling=(3.0, 3.0, 3.0)) for b in borders]
    pooled = np.concatenate([distances[1][borders[0]], distances[0][borders[1]]])
    assert case["liver"]["assd_mm"] == pytest.approx(pooled.mean(), abs=1e-9)
    assert case["spleen"]["dice"] == 1.0 and case["spleen"]["mssd_mm"] == 0.0


def test_missing_prediction_is_a_one_line_error(tmp_path):
    pred_dir, ref_dir = _folders(tmp_path)
    (pred_dir / "case_1.nii.gz").unlink()
    _assert_one_line_error(_run("--pred", pred_dir, "--ref", ref_dir), "case_1.nii.gz", "no prediction named case_1")
    assert not (tmp_path / "pred_evaluation").exists()


def test_shape_mismatch_is_a_one_line_error(tmp_path):
    pred_dir, ref_dir = _folders(tmp_path)
    _save(pred_dir / "case_1.nii.gz", _labels(shape=(24, 20, 9)))
    _assert_one_line_error(_run("--pred", pred_dir, "--ref", ref_dir), "pred/case_1.nii.gz", "shape (24, 20, 9)")


def test_unreadable_and_non_integer_files_are_one_line_errors(tmp_path):
    pred_dir, ref_dir = _folders(tmp_path)
    (pred_dir / "case_0.nii.gz").write_bytes(b"\x1f\x8b garbage")
    _assert_one_line_error(_run("--pred", pred_dir, "--ref", ref_dir), "pred/case_0.nii.gz")
    _save(pred_dir / "case_0.nii.gz", _labels().astype(np.float32) * 0.5)
    _assert_one_line_error(_run("--pred", pred_dir, "--ref", ref_dir), "pred/case_0.nii.gz", "non-integer")
    assert not (tmp_path / "pred_evaluation").exists()


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--labels", "liver"], ["--labels", "name=value"]),
        (["--largest-component", "livr"], ["--largest-component", "livr"]),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, extra, fragments):
    pred_dir, ref_dir = _folders(tmp_path, num_cases=1)
    _assert_one_line_error(_run("--pred", pred_dir, "--ref", ref_dir, *extra), *fragments)


def test_missing_directories_and_existing_output(tmp_path):
    pred_dir, ref_dir = _folders(tmp_path, num_cases=1)
    _assert_one_line_error(_run("--pred", tmp_path / "nope", "--ref", ref_dir), "nope", "not found")
    _assert_one_line_error(_run("--ref", ref_dir), "--pred")
    (tmp_path / "taken").mkdir()
    _assert_one_line_error(_run("--pred", pred_dir, "--ref", ref_dir, "--out", tmp_path / "taken"), "already exists")


def test_installed_script(tmp_path):
    pred_dir, ref_dir = _folders(tmp_path, num_cases=1)
    cdseg = shutil.which("cdseg")
    assert cdseg is not None
    done = subprocess.run([cdseg, "evaluate", "--pred", pred_dir, "--ref", ref_dir, "--out", tmp_path / "r"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Report:" in done.stdout and (tmp_path / "r" / "report.md").is_file()
    failed = subprocess.run([cdseg, "evaluate", "--pred", tmp_path / "missing", "--ref", ref_dir],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and failed.stderr.strip().count("\n") == 0 and "missing" in failed.stderr
