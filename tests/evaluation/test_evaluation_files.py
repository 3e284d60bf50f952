"""Pairing NIfTI folders, header checks, dataset.json metadata and the --labels syntax."""

import nibabel as nib
import numpy as np
import pytest

from keras_cdseg.data.dataset import Case, write_dataset_json
from keras_cdseg.errors import InputError
from keras_cdseg.evaluation import files

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


def _save(path, data, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def _labels(shape=(12, 10, 4)):
    data = np.zeros(shape, np.uint8)
    data[2:8, 2:8, 1:3] = 1
    return data


def test_match_pairs_by_case_name_across_suffixes(tmp_path):
    _save(tmp_path / "ref" / "a.nii.gz", _labels())
    _save(tmp_path / "ref" / "b.nii.gz", _labels())
    _save(tmp_path / "pred" / "a.nii.gz", _labels())
    _save(tmp_path / "pred" / "b.nii", _labels())
    pairs = files.match_pairs(tmp_path / "pred", tmp_path / "ref")
    assert [(p.case_id, p.pred.name, p.ref.name) for p in pairs] == [
        ("a", "a.nii.gz", "a.nii.gz"),
        ("b", "b.nii", "b.nii.gz"),
    ]
    files.check_headers(pairs)
    loaded = list(files.iter_case_pairs(pairs))
    assert loaded[0].spacing_mm == pytest.approx((0.8, 0.8, 2.0)) and loaded[0].labels_gt.dtype == np.uint8


@pytest.mark.parametrize(
    "pred_names, ref_names, culprit, message",
    [
        (["a"], ["a", "b"], "b.nii.gz", "no prediction named b"),
        (["a", "c"], ["a"], "c.nii.gz", "no reference named c"),
        ([], ["a"], "pred", "no .nii.gz or .nii files"),
    ],
)
def test_missing_partners(tmp_path, pred_names, ref_names, culprit, message):
    (tmp_path / "pred").mkdir()
    for name in pred_names:
        _save(tmp_path / "pred" / f"{name}.nii.gz", _labels())
    for name in ref_names:
        _save(tmp_path / "ref" / f"{name}.nii.gz", _labels())
    with pytest.raises(InputError, match=message) as error:
        files.match_pairs(tmp_path / "pred", tmp_path / "ref")
    assert error.value.source.endswith(culprit)


def test_duplicate_case_and_missing_directory(tmp_path):
    _save(tmp_path / "ref" / "a.nii.gz", _labels())
    _save(tmp_path / "ref" / "a.nii", _labels())
    with pytest.raises(InputError, match="two reference files for case 'a'"):
        files.find_nifti_files(tmp_path / "ref", "reference")
    with pytest.raises(InputError, match="prediction file or folder not found"):
        files.find_nifti_files(tmp_path / "nope", "prediction")


def test_header_checks_name_the_prediction(tmp_path):
    _save(tmp_path / "ref" / "a.nii.gz", _labels())
    _save(tmp_path / "pred" / "a.nii.gz", _labels((12, 10, 5)))
    with pytest.raises(InputError, match=r"shape \(12, 10, 5\) differs") as error:
        files.check_headers(files.match_pairs(tmp_path / "pred", tmp_path / "ref"))
    assert error.value.source.endswith("pred/a.nii.gz")
    _save(tmp_path / "pred" / "a.nii.gz", _labels(), affine=np.diag([0.8, 0.8, 2.5, 1.0]))
    with pytest.raises(InputError, match="affine differs"):
        files.check_headers(files.match_pairs(tmp_path / "pred", tmp_path / "ref"))
    (tmp_path / "pred" / "a.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        files.check_headers(files.match_pairs(tmp_path / "pred", tmp_path / "ref"))


def test_dataset_metadata_from_the_parent_directory(tmp_path):
    root = tmp_path / "ds"
    cases = []
    for case_id, modality in (("ct_1", "CT"), ("mr_1", "MR")):
        image = _save(root / "imagesTs" / f"{case_id}.nii.gz", np.random.default_rng(0).normal(size=(12, 10, 4)))
        label = _save(root / "labelsTs" / f"{case_id}.nii.gz", _labels())
        cases.append(Case(case_id, image, label, modality))
    write_dataset_json(root, "toy", {"background": 0, "liver": 1, "spleen": 2}, training=[], test=cases)
    metadata = files.read_dataset_metadata(root / "labelsTs")
    assert metadata["labels"] == {"liver": 1, "spleen": 2}
    assert metadata["modality_by_case"] == {"ct_1": "CT", "mr_1": "MR"}
    assert files.read_dataset_metadata(tmp_path) is None


def test_parse_labels_option():
    assert files.parse_labels_option("liver=1, spleen=2") == {"liver": 1, "spleen": 2}
    for bad in ("liver", "liver=one", "=1", "liver=1,liver=2"):
        with pytest.raises(InputError, match="--labels"):
            files.parse_labels_option(bad)
