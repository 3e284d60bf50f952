import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_import_builders import tiny_case, write_msd_task, write_nifti_pair

from keras_cdseg.data.dataset import Case, load_dataset, parse_labels, validate_case, validate_dataset, write_dataset_json
from keras_cdseg.errors import InputError


def test_reads_msd_task03_dataset_json_unchanged(tmp_path):
    write_msd_task(tmp_path, num_training=2, num_test=1)
    index = load_dataset(tmp_path)

    assert index.name == "LITS"
    assert index.labels == {"background": 0, "liver": 1, "cancer": 2}
    assert [c.case_id for c in index.training] == ["liver_0", "liver_1"]
    assert index.training[0].image == (tmp_path / "imagesTr" / "liver_0.nii.gz").resolve()
    assert index.training[0].label == (tmp_path / "labelsTr" / "liver_0.nii.gz").resolve()
    assert index.test == (Case("liver_2", (tmp_path / "imagesTs" / "liver_2.nii.gz").resolve(), None, "CT"),)
    assert {c.modality for c in index.cases} == {"CT"}


def test_write_then_load_round_trips_our_form(tmp_path):
    image, label = tiny_case(0)
    write_nifti_pair(tmp_path / "imagesTr" / "ct_001.nii.gz", tmp_path / "labelsTr" / "ct_001.nii.gz", image, label)
    write_nifti_pair(tmp_path / "imagesTs" / "mr_001.nii", None, image, None)
    training = (Case("ct_001", tmp_path / "imagesTr" / "ct_001.nii.gz", tmp_path / "labelsTr" / "ct_001.nii.gz", "CT"),)
    test = (Case("mr_001", tmp_path / "imagesTs" / "mr_001.nii", None, "MR"),)
    write_dataset_json(tmp_path, "demo", {"liver": 1, "spleen": 2}, training, test, extra={"description": "x"})

    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "liver": 1, "spleen": 2}
    assert meta["training"] == [{"image": "./imagesTr/ct_001.nii.gz", "label": "./labelsTr/ct_001.nii.gz", "modality": "CT"}]
    assert meta["test"] == [{"image": "./imagesTs/mr_001.nii", "modality": "MR"}]
    index = load_dataset(tmp_path)
    assert index.training == tuple(Case(c.case_id, c.image.resolve(), c.label.resolve(), c.modality) for c in training)
    assert index.test[0].case_id == "mr_001" and index.test[0].modality == "MR"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"0": "background", "1": "liver", "2": "cancer"}, {"background": 0, "liver": 1, "cancer": 2}),
        ({"spleen": 2, "liver": 1}, {"background": 0, "liver": 1, "spleen": 2}),
        ({"bg": 0, "liver": 1}, {"background": 0, "liver": 1}),
    ],
)
def test_parse_labels_accepts_both_forms(raw, expected):
    assert parse_labels(raw, "x") == expected
    assert list(parse_labels(raw, "x")) == list(expected)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"liver": 1, "tumour": 1}, "declared twice"),
        ({"1": "liver", "2": "liver"}, "used for several values"),
        ({"liver": 1.5}, "not an integer label value"),
        ({"liver": 300}, "outside 0..255"),
        ([], "must be a non-empty object"),
    ],
)
def test_parse_labels_rejects_bad_tables(raw, message):
    with pytest.raises(InputError, match=message):
        parse_labels(raw, "dataset.json")


def _write_meta(root, meta):
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(meta) if not isinstance(meta, str) else meta)


def test_load_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(InputError, match="dataset.json not found"):
        load_dataset(tmp_path)
    _write_meta(tmp_path, "{not json")
    with pytest.raises(InputError, match=r"dataset.json: malformed JSON"):
        load_dataset(tmp_path)
    _write_meta(tmp_path, {"labels": {"liver": 1}})
    with pytest.raises(InputError, match="missing key 'training'"):
        load_dataset(tmp_path)
    _write_meta(tmp_path, {"labels": {"liver": 1}, "training": [{"image": "./imagesTr/a.nii.gz"}]})
    with pytest.raises(InputError, match=r"training\[0\] \(a\): training entry has no 'label' path"):
        load_dataset(tmp_path)


def test_missing_file_names_the_entry_and_the_path(tmp_path):
    write_msd_task(tmp_path, num_training=3, num_test=0)
    (tmp_path / "labelsTr" / "liver_1.nii.gz").unlink()
    with pytest.raises(InputError) as error:
        load_dataset(tmp_path)
    message = str(error.value)
    assert "training[1] (liver_1)" in message
    assert "label file './labelsTr/liver_1.nii.gz' not found" in message
    assert "\n" not in message


def test_duplicate_case_ids_are_rejected(tmp_path):
    meta = write_msd_task(tmp_path, num_training=2, num_test=0)
    meta["test"] = ["./imagesTr/liver_0.nii.gz"]
    _write_meta(tmp_path, meta)
    with pytest.raises(InputError, match=r"duplicate case id 'liver_0' in training\[0\] and test\[0\]"):
        load_dataset(tmp_path)


def _pair(tmp_path, image, label, image_affine=None, label_affine=None, case_id="c1"):
    image_path, label_path = tmp_path / f"{case_id}_img.nii.gz", tmp_path / f"{case_id}_lab.nii.gz"
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine if image_affine is None else image_affine), str(image_path))
    if label is not None:
        nib.save(nib.Nifti1Image(label, affine if label_affine is None else label_affine), str(label_path))
    return Case(case_id, image_path, label_path if label is not None else None, "CT")


LABELS = {"background": 0, "liver": 1}


def test_validate_collects_every_problem_of_a_case(tmp_path):
    image, label = tiny_case(0)
    image[0, 0, 0] = np.inf
    label = np.pad(label, ((0, 1), (0, 0), (0, 0)))
    label[0, 0, 0] = 7
    check = validate_case(_pair(tmp_path, image, label), LABELS)

    assert not check.ok
    assert len(check.problems) == 3, check.problems
    assert "image contains 1 NaN/Inf voxels" in check.problems[0]
    assert "values [7] are not declared" in check.problems[1]
    assert "label shape (9, 7, 4) differs from image shape (8, 7, 4)" in check.problems[2]


def test_validate_reports_affine_mismatch_and_non_integer_labels(tmp_path):
    image, label = tiny_case(0)
    shifted = np.diag([1.5, 1.5, 3.0, 1.0])
    shifted[0, 3] = 0.5
    check = validate_case(_pair(tmp_path, image, label, label_affine=shifted), LABELS)
    assert check.problems == ("label c1_lab.nii.gz: label affine differs from the image affine (max difference 0.5)",)
    check = validate_case(_pair(tmp_path, image, label.astype(np.float32) * 0.5, case_id="c2"), LABELS)
    assert check.problems == ("label c2_lab.nii.gz: label map has non-integer values",)


def test_validate_rejects_constant_image_4d_image_and_truncated_file(tmp_path):
    image, label = tiny_case(0)
    assert "image is constant (every voxel = 3)" in validate_case(_pair(tmp_path, np.full_like(image, 3), label), LABELS).problems[0]
    four_d = _pair(tmp_path, np.stack([image, image], axis=-1), label, case_id="c2")
    assert "expected a 3D volume, got 4D" in validate_case(four_d, LABELS).problems[0]
    noisy = np.random.default_rng(0).normal(size=(20, 20, 10)).astype(np.float32)
    truncated = _pair(tmp_path, noisy, None, case_id="c3")
    compressed = truncated.image.read_bytes()
    truncated.image.write_bytes(compressed[: len(compressed) // 2])
    assert validate_case(truncated, LABELS).problems == (
        "image c3_img.nii.gz: truncated or corrupt compressed NIfTI "
        "(Compressed file ended before the end-of-stream marker was reached)",
    )
    # Cut inside the header: still one problem naming the file (nibabel cannot even tell the type).
    truncated.image.write_bytes(compressed[:100])
    problems = validate_case(truncated, LABELS).problems
    assert len(problems) == 1
    assert problems[0].startswith("image c3_img.nii.gz: truncated or corrupt compressed NIfTI")


@pytest.mark.parametrize("policy, num_problems, num_warnings", [("warn", 0, 1), ("error", 1, 0), ("ignore", 0, 0)])
def test_empty_label_map_policy(tmp_path, policy, num_problems, num_warnings):
    image, label = tiny_case(0)
    check = validate_case(_pair(tmp_path, image, np.zeros_like(label)), LABELS, empty_labels=policy)
    assert (len(check.problems), len(check.warnings)) == (num_problems, num_warnings)
    assert all("label map is empty" in m for m in check.problems + check.warnings)


def test_validate_dataset_records_geometry_and_label_counts(tmp_path):
    write_msd_task(tmp_path, num_training=2, num_test=1)
    checks = validate_dataset(load_dataset(tmp_path))
    assert [c.case_id for c in checks] == ["liver_0", "liver_1", "liver_2"]
    assert all(c.ok for c in checks)
    assert checks[0].shape == (8, 7, 4) and checks[0].spacing_mm == (1.5, 1.5, 3.0)
    assert checks[0].label_voxels == {0: 8 * 7 * 4 - 19, 1: 18, 2: 1}
    assert checks[2].label_voxels == {}


def test_header_grid_is_checked_even_when_image_voxels_are_unusable(tmp_path):
    image, label = tiny_case(0)
    image[:] = np.nan
    check = validate_case(_pair(tmp_path, image, np.pad(label, ((0, 0), (0, 0), (0, 2)))), LABELS)
    assert len(check.problems) == 2
    assert "differs from image shape" in check.problems[1]
    assert Path(check.problems[0].split(":")[0].split()[-1]).name == "c1_img.nii.gz"
