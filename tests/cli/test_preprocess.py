"""`cdseg preprocess` end to end: good sources, and every bad input of issue 3 as a one-line exit-2 error."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from test_import_builders import (  # noqa: E402
    read_dicom,
    tiny_case,
    tree_fingerprint,
    write_chaos_case,
    write_dicom_slice,
    write_msd_task,
    write_nifti_pair,
)

from cdseg.main import cli  # noqa: E402
from keras_cdseg.data import nifti_io  # noqa: E402

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def _pairs(src, num_cases=2):
    for i in range(num_cases):
        image, label = tiny_case(i)
        write_nifti_pair(src / "images" / f"case_{i}.nii.gz", src / "labels" / f"case_{i}.nii.gz", image, label)


def _truncated_image(src):
    _pairs(src)
    noisy = np.random.default_rng(0).normal(size=(8, 7, 4)).astype(np.float32)
    path = src / "images" / "case_1.nii.gz"
    nifti_io.save_array(noisy, AFFINE, path)
    path.write_bytes(path.read_bytes()[:-60])
    return "case_1", "truncated or corrupt compressed NIfTI"


def _four_d_image(src):
    _pairs(src)
    image, _ = tiny_case(1)
    nib.save(nib.Nifti1Image(np.stack([image, image], -1), AFFINE), str(src / "images" / "case_1.nii.gz"))
    return "case_1", "expected a 3D volume, got 4D"


def _shape_mismatch(src):
    _pairs(src)
    nifti_io.save_array(np.zeros((8, 7, 5), np.uint8), AFFINE, src / "labels" / "case_0.nii.gz")
    return "case_0", "label shape (8, 7, 5) differs from image shape (8, 7, 4)"


def _affine_mismatch(src):
    _pairs(src)
    _, label = tiny_case(0)
    nifti_io.save_array(label, np.diag([1.5, 1.5, 2.0, 1.0]), src / "labels" / "case_0.nii.gz")
    return "case_0", "label affine differs from the image affine"


def _undeclared_label(src):
    write_msd_task(src, num_training=2, num_test=0)
    _, label = tiny_case(1)
    label[0, 0, 0] = 3
    nifti_io.save_array(label, AFFINE, src / "labelsTr" / "liver_1.nii.gz")
    return "liver_1", "values [3] are not declared"


def _nan_image(src):
    _pairs(src)
    image, _ = tiny_case(0)
    image[0, 0, 0], image[1, 0, 0] = np.nan, np.inf
    nifti_io.save_array(image, AFFINE, src / "images" / "case_0.nii.gz")
    return "case_0", "image contains 2 NaN/Inf voxels"


def _constant_image(src):
    _pairs(src)
    nifti_io.save_array(np.full((8, 7, 4), -1000, np.int16), AFFINE, src / "images" / "case_1.nii.gz")
    return "case_1", "image is constant (every voxel = -1000)"


def _empty_label(src):
    _pairs(src)
    nifti_io.save_array(np.zeros((8, 7, 4), np.uint8), AFFINE, src / "labels" / "case_1.nii.gz")
    return "case_1", "label map is empty"


def _missing_dataset_json(src):
    write_msd_task(src, num_training=1, num_test=0)
    (src / "dataset.json").unlink()
    return "dataset.json", "dataset.json not found"


def _dataset_json_missing_file(src):
    write_msd_task(src, num_training=2, num_test=1)
    (src / "imagesTs" / "liver_2.nii.gz").unlink()
    return "test[0] (liver_2)", "image file './imagesTs/liver_2.nii.gz' not found"


def _dicom_mixed_series(src):
    write_chaos_case(src, "CT", 1, num_slices=4, seed=0)
    write_chaos_case(src, "CT", 2, num_slices=4, seed=1)
    first = src / "CT" / "2" / "DICOM_anon" / "i0000,0000b.dcm"
    geometry = read_dicom(first)
    orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # a sagittal slice dropped into an axial series
    write_dicom_slice(first, np.zeros((12, 10)), geometry.ImagePositionPatient, orientation=orientation,
                      series_uid=str(geometry.SeriesInstanceUID))
    return "ct_002", "mixed series: ImageOrientationPatient differs between slices"


def _dicom_missing_slice(src):
    write_chaos_case(src, "MR", 7, num_slices=5, seed=2, sequences=("InPhase", "T2SPIR"))
    folder = src / "MR" / "7" / "T2SPIR" / "DICOM_anon"
    by_position = sorted(folder.glob("*.dcm"), key=lambda p: float(read_dicom(p).ImagePositionPatient[2]))
    by_position[1].unlink()
    sorted((src / "MR" / "7" / "T2SPIR" / "Ground").glob("*.png"))[0].unlink()
    return "mr_007_t2spir", "missing slices: gap of 5 mm after slice 0 of 4"


def _png_count_mismatch(src):
    write_chaos_case(src, "CT", 3, num_slices=3, seed=0)
    sorted((src / "CT" / "3" / "Ground").glob("*.png"))[0].unlink()
    return "ct_003", "2 ground-truth PNGs for 3 DICOM slices"


BAD_INPUTS = [
    _truncated_image, _four_d_image, _shape_mismatch, _affine_mismatch, _undeclared_label, _nan_image,
    _constant_image, _empty_label, _missing_dataset_json, _dataset_json_missing_file, _dicom_mixed_series,
    _dicom_missing_slice, _png_count_mismatch,
]


@pytest.mark.parametrize("make_bad_source", BAD_INPUTS, ids=[f.__name__[1:] for f in BAD_INPUTS])
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, make_bad_source):
    src, dst = tmp_path / "src", tmp_path / "out" / "dst"
    src.mkdir()
    case_id, problem = make_bad_source(src)
    extra = ["--empty-labels", "error"] if make_bad_source is _empty_label else []
    extra += ["--format", "msd"] if make_bad_source is _missing_dataset_json else []
    before = tree_fingerprint(src)

    result = CliRunner().invoke(cli, ["preprocess", str(src), str(dst), *extra])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1, result.output
    assert case_id in error_lines[0] and problem in error_lines[0], result.output
    assert not dst.exists() and list((tmp_path / "out").iterdir() if (tmp_path / "out").exists() else []) == []
    assert tree_fingerprint(src) == before


def test_every_failing_case_is_listed_before_the_error(tmp_path):
    src = tmp_path / "src"
    _nan_image(src)
    nifti_io.save_array(np.full((8, 7, 4), 5.0), AFFINE, src / "images" / "case_1.nii.gz")
    result = CliRunner().invoke(cli, ["preprocess", str(src), str(tmp_path / "dst")])
    assert result.exit_code == 2
    fails = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert fails == [
        "FAIL  case_0: image case_0.nii.gz: image contains 2 NaN/Inf voxels",
        "FAIL  case_1: image case_1.nii.gz: image is constant (every voxel = 5)",
    ]
    assert "Error: " in result.output and "2 problems in 2 of 2 cases" in result.output


def test_empty_label_is_a_warning_by_default(tmp_path):
    src = tmp_path / "src"
    _empty_label(src)
    result = CliRunner().invoke(cli, ["preprocess", str(src), str(tmp_path / "dst"), "--labels", "liver=1"])
    assert result.exit_code == 0, result.output
    assert "WARN  case_1: label case_1.nii.gz: label map is empty (background only)" in result.output
    report = json.loads((tmp_path / "dst" / "preprocess.json").read_text())
    assert report["num_warnings"] == 1 and report["cases"][1]["warnings"] == ["label case_1.nii.gz: label map is empty (background only)"]


def test_existing_destination_needs_overwrite(tmp_path):
    src = tmp_path / "src"
    _pairs(src)
    runner = CliRunner()
    assert runner.invoke(cli, ["preprocess", str(src), str(tmp_path / "dst"), "-q"]).exit_code == 0
    again = runner.invoke(cli, ["preprocess", str(src), str(tmp_path / "dst")])
    assert again.exit_code == 2 and "already exists; pass --overwrite to replace it" in again.output
    assert runner.invoke(cli, ["preprocess", str(src), str(tmp_path / "dst"), "--overwrite"]).exit_code == 0


def test_installed_cdseg_imports_chaos(tmp_path):
    write_chaos_case(tmp_path / "chaos", "CT", 1, num_slices=3)
    write_chaos_case(tmp_path / "chaos", "MR", 2, num_slices=3, sequences=("InPhase", "T2SPIR"))
    cdseg = shutil.which("cdseg") or pytest.skip("cdseg script not installed")
    run = subprocess.run([cdseg, "preprocess", str(tmp_path / "chaos"), str(tmp_path / "liver")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "3 training, 0 test cases (1 CT, 2 MR); format chaos" in run.stdout
    dataset = json.loads((tmp_path / "liver" / "dataset.json").read_text())
    assert [e["modality"] for e in dataset["training"]] == ["CT", "MR", "MR"]
    assert dataset["labels"] == {"background": 0, "liver": 1}
