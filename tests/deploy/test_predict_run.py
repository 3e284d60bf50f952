"""`predict_cases`: outputs, statistics.json, DICOM input, probabilities, previews, and all-or-nothing errors."""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from deploy_fixtures import affine_for, blob_image, make_threshold_predictor, threshold_card, write_nifti
from PIL import Image

from keras_cdseg.data.dicom_io import read_series
from keras_cdseg.deploy.inputs import discover_inputs
from keras_cdseg.deploy.predict import STATISTICS_JSON, label_statistics, predict_cases
from keras_cdseg.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_import_builders import write_series  # noqa: E402  (real DICOM files via pydicom)

SHAPE = (18, 20, 8)
AFFINE = affine_for("LPS", (4.0, 4.0, 5.0), SHAPE, origin_mm=(5.0, -3.0, 2.0))


@pytest.fixture
def scans(tmp_path):
    paths = []
    for i, centre in enumerate([(8.0, -5.0, 3.0), (-6.0, 4.0, 0.0)]):
        image, inside = blob_image(SHAPE, AFFINE, radii_mm=(22.0, 16.0, 14.0), centre_mm=centre, seed=i)
        paths.append((write_nifti(tmp_path / "in" / f"case_{i}.nii.gz", image, AFFINE), image, inside))
    return paths


def _predictor():
    return make_threshold_predictor(threshold_card())


def test_statistics_describe_the_written_label_maps(tmp_path, scans):
    results = predict_cases([tmp_path / "in"], tmp_path / "out", _predictor())
    record = json.loads((tmp_path / "out" / STATISTICS_JSON).read_text())
    assert [r["case_id"] for r in results] == ["case_0", "case_1"] and set(record["cases"]) == {"case_0", "case_1"}
    voxel_ml = 4.0 * 4.0 * 5.0 / 1000
    for path, image, inside in scans:
        stats = record["cases"][path.name[: -len(".nii.gz")]]
        labels = np.asarray(nib.load(stats["outputs"]["labels"]).dataobj)
        np.testing.assert_array_equal(labels, inside)
        liver = stats["classes"]["liver"]
        assert liver["num_voxels"] == int(inside.sum())
        assert liver["volume_ml"] == pytest.approx(inside.sum() * voxel_ml, abs=1e-3)
        assert liver["mean_intensity"] == pytest.approx(float(image[inside].mean()), rel=1e-9)
        assert stats["mean_intensity"] == pytest.approx(float(image.mean()), rel=1e-9)
        assert stats["voxel_volume_ml"] == pytest.approx(voxel_ml)
        assert set(stats["seconds"]) == {"load", "prepare", "network", "postprocess", "write", "total"}
        assert stats["shape"] == list(SHAPE) and stats["postprocess"]["largest_component_classes"] == [1]


def test_a_second_run_keeps_earlier_cases_and_needs_overwrite_to_replace(tmp_path, scans):
    out = tmp_path / "out"
    predict_cases([scans[0][0]], out, _predictor())
    predict_cases([scans[1][0]], out, _predictor())
    assert set(json.loads((out / STATISTICS_JSON).read_text())["cases"]) == {"case_0", "case_1"}
    with pytest.raises(InputError, match="output exists; pass --overwrite"):
        predict_cases([scans[0][0]], out, _predictor(), preview=True)
    assert not (out / "case_0_preview.png").exists()
    predict_cases([scans[0][0]], out, _predictor(), overwrite=True, preview=True)
    expected = ["case_0.nii.gz", "case_0_preview.png", "case_1.nii.gz", STATISTICS_JSON]
    assert sorted(p.name for p in out.iterdir()) == expected  # no staging folder left behind
    record = json.loads((out / STATISTICS_JSON).read_text())
    assert set(record["cases"]) == {"case_0", "case_1"} and "preview" in record["cases"]["case_0"]["outputs"]
    np.testing.assert_array_equal(np.asarray(nib.load(str(out / "case_0.nii.gz")).dataobj), scans[0][2])


def test_dicom_series_folder_is_segmented_on_its_own_grid(tmp_path):
    rows, cols, num_slices = 20, 18, 7
    rr, cc, kk = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(num_slices), indexing="ij")
    blob = ((rr - 9) / 6.0) ** 2 + ((cc - 8) / 5.0) ** 2 + ((kk - 3) / 2.5) ** 2 <= 1
    stored = np.where(blob, 1300, 900).astype(np.int16).transpose(2, 0, 1)  # HU 276 / -124 after the intercept
    paths = write_series(tmp_path / "series_a", stored, gap_mm=5.0, spacing_row_col=(4.0, 4.0))
    results = predict_cases([tmp_path / "series_a"], tmp_path / "out", _predictor(), preview=True)
    output = nib.load(str(tmp_path / "out" / "series_a.nii.gz"))
    series = read_series(paths)
    np.testing.assert_allclose(output.affine, series.affine, atol=1e-6)
    assert output.shape == series.data.shape and output.header.get_sform(coded=True)[1] == 1
    np.testing.assert_array_equal(np.asarray(output.dataobj), blob.transpose(1, 0, 2))  # (columns, rows, slices)
    assert results[0]["input_kind"] == "dicom"
    assert results[0]["classes"]["liver"]["mean_intensity"] == pytest.approx(1300 - 1024)
    assert Image.open(tmp_path / "out" / "series_a_preview.png").size[1] > 256


@pytest.mark.parametrize("order", ["C", "F"])
def test_label_statistics_match_masks_per_class_in_either_memory_order(order):
    rng = np.random.default_rng(0)
    image = np.asarray(rng.normal(40.0, 90.0, (23, 17, 9)), dtype=np.float32, order=order)
    labels = np.asarray(rng.choice([0, 0, 0, 1, 2, 4], size=image.shape), dtype=np.uint8, order="C")
    affine = np.diag([0.8, -0.8, 2.5, 1.0])
    stats = label_statistics(labels, image, affine, {"background": 0, "liver": 1, "kidney": 2, "absent": 3, "spleen": 4})
    for name, value in {"liver": 1, "kidney": 2, "spleen": 4}.items():
        mask = labels == value
        assert stats["classes"][name]["num_voxels"] == int(mask.sum())
        assert stats["classes"][name]["volume_ml"] == pytest.approx(mask.sum() * 0.8 * 0.8 * 2.5 / 1000, abs=1e-3)
        assert stats["classes"][name]["mean_intensity"] == pytest.approx(float(image[mask].mean(dtype=np.float64)), rel=1e-12)
    assert stats["classes"]["absent"] == {"label_value": 3, "num_voxels": 0, "volume_ml": 0.0, "mean_intensity": None}
    assert "background" not in stats["classes"] and stats["spacing_mm"] == pytest.approx([0.8, 0.8, 2.5])
    assert stats["mean_intensity"] == pytest.approx(float(image.mean(dtype=np.float64)), rel=1e-12)


def test_probability_maps_are_small_and_read_back_as_probabilities(tmp_path, scans):
    predict_cases([scans[0][0]], tmp_path / "out", _predictor(), probabilities=True, postprocess=False)
    img = nib.load(str(tmp_path / "out" / "case_0_probabilities.nii.gz"))
    assert img.shape == SHAPE + (2,) and img.get_data_dtype() == np.uint8
    probabilities = img.get_fdata()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=2 / 255)
    np.testing.assert_array_equal(np.argmax(probabilities, axis=-1), scans[0][2])
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-6)


def test_preview_png_shows_three_planes(tmp_path, scans):
    predict_cases([scans[0][0]], tmp_path / "out", _predictor(), preview=True)
    rgb = np.asarray(Image.open(tmp_path / "out" / "case_0_preview.png").convert("RGB"))
    assert rgb.shape[1] > 3 * 100 and rgb.shape[0] > 100
    assert np.count_nonzero(np.all(rgb == (255, 60, 60), axis=-1)) > 50  # liver contour drawn


def _write_bad(tmp_path, kind):
    path = tmp_path / "bad" / f"{kind}.nii.gz"
    if kind == "two_d":
        return write_nifti(path, np.ones((10, 10), np.int16), np.eye(4))
    if kind == "four_d":
        return write_nifti(path, np.random.default_rng(0).random((8, 8, 4, 2)).astype(np.float32), np.eye(4))
    if kind == "nan":
        data = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
        data[1, 2, 3] = np.nan
        return write_nifti(path, data, np.eye(4))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x1f\x8b this is no NIfTI")
    return path


@pytest.mark.parametrize("kind, message", [
    ("two_d", "expected a 3D volume, got 2D"),
    ("four_d", "expected a 3D volume, got 4D"),
    ("nan", "1 NaN/Inf voxels"),
    ("garbage", "NIfTI"),
])  # fmt: skip
def test_bad_input_writes_nothing_even_after_good_cases(tmp_path, scans, kind, message):
    bad = _write_bad(tmp_path, kind)
    for out in (tmp_path / "new_out", tmp_path / "existing_out"):
        if out.name == "existing_out":
            out.mkdir()
        with pytest.raises(InputError, match=message) as error:
            predict_cases([scans[0][0], scans[1][0], bad], out, _predictor())
        assert "\n" not in str(error.value) and str(bad) in str(error.value)
        assert not out.exists() if out.name == "new_out" else list(out.iterdir()) == []


def test_inputs_with_the_same_case_name_are_refused(tmp_path, scans):
    other = tmp_path / "other" / "case_0.nii"
    other.parent.mkdir()
    nib.save(nib.load(str(scans[0][0])), str(other))
    with pytest.raises(InputError, match="case name 'case_0' also used"):
        discover_inputs([scans[0][0], other])
    with pytest.raises(InputError, match="input not found"):
        discover_inputs([tmp_path / "missing.nii.gz"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no NIfTI files and no DICOM files"):
        discover_inputs([tmp_path / "empty"])
