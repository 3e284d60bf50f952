import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_import_builders import tiny_case, tree_fingerprint, write_chaos_case, write_msd_task, write_nifti_pair

from keras_cdseg.data import nifti_io
from keras_cdseg.data.dataset import load_dataset
from keras_cdseg.data.importing import DatasetProblems, detect_format, import_dataset, parse_label_spec
from keras_cdseg.errors import InputError

REAL = Path(__file__).parent / "real"


def test_msd_task_is_copied_byte_for_byte_with_its_labels(tmp_path):
    write_msd_task(tmp_path / "Task03_Liver", num_training=2, num_test=1)
    before = tree_fingerprint(tmp_path / "Task03_Liver")
    result = import_dataset(tmp_path / "Task03_Liver", tmp_path / "liver")

    assert tree_fingerprint(tmp_path / "Task03_Liver") == before
    index = load_dataset(tmp_path / "liver")
    assert index.labels == {"background": 0, "liver": 1, "cancer": 2}
    assert [c.case_id for c in index.training] == ["liver_0", "liver_1"]
    assert [(c.case_id, c.label, c.modality) for c in index.test] == [("liver_2", None, "CT")]
    for name in ["imagesTr/liver_0.nii.gz", "labelsTr/liver_1.nii.gz", "imagesTs/liver_2.nii.gz"]:
        assert (tmp_path / "liver" / name).read_bytes() == (tmp_path / "Task03_Liver" / name).read_bytes()
    report = json.loads((tmp_path / "liver" / "preprocess.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    assert [(s["format"], s["num_cases"]) for s in report["sources"]] == [("msd", 3)]
    assert (report["num_training"], report["num_test"]) == (2, 1)
    assert report["cases"][0]["source"]["label_mapping"] == {"liver": [1], "cancer": [2]}
    assert report["cases"][0]["label_voxels"] == {"0": 205, "1": 18, "2": 1}


def test_msd_labels_merged_by_name(tmp_path):
    write_msd_task(tmp_path / "src", num_training=1, num_test=0)
    import_dataset(tmp_path / "src", tmp_path / "dst", label_spec="liver=liver+cancer")
    index = load_dataset(tmp_path / "dst")
    assert index.labels == {"background": 0, "liver": 1}
    label = nifti_io.load_label(index.training[0].label)
    assert int((label.data == 1).sum()) == 19 and label.data.max() == 1


def test_multi_modal_msd_task_is_rejected(tmp_path):
    write_msd_task(tmp_path, num_training=1, num_test=0)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    meta["modality"] = {"0": "FLAIR", "1": "T1w"}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"multi-modal MSD task \(2 channels"):
        import_dataset(tmp_path, tmp_path.parent / "dst_mm")


def test_nifti_pairs_in_images_and_labels_folders(tmp_path):
    src = tmp_path / "src"
    for i in range(2):
        image, label = tiny_case(i)
        write_nifti_pair(src / "images" / f"case_{i}.nii.gz", src / "labels" / f"case_{i}.nii.gz", image, label * (i + 1))
    write_nifti_pair(src / "images" / "unlabelled.nii", None, tiny_case(5)[0], None)
    assert detect_format(src) == "nifti-pairs"
    import_dataset(src, tmp_path / "dst", modality="MR")

    index = load_dataset(tmp_path / "dst")
    assert index.labels == {"background": 0, "label_1": 1, "label_2": 2}
    assert [c.case_id for c in index.training] == ["case_0", "case_1"]
    assert index.test[0].image.name == "unlabelled.nii" and index.test[0].modality == "MR"


def test_flat_seg_suffix_pairs(tmp_path):
    image, label = tiny_case(0)
    write_nifti_pair(tmp_path / "src" / "a.nii.gz", tmp_path / "src" / "a_seg.nii.gz", image, label)
    write_nifti_pair(tmp_path / "src" / "b.nii.gz", tmp_path / "src" / "b_label.nii.gz", image, label)
    assert detect_format(tmp_path / "src") == "nifti-pairs"
    index = import_dataset(tmp_path / "src", tmp_path / "dst", label_spec="liver=1").index
    assert [c.case_id for c in index.training] == ["a", "b"] and index.labels == {"background": 0, "liver": 1}
    (tmp_path / "src" / "c_seg.nii.gz").write_bytes((tmp_path / "src" / "a_seg.nii.gz").read_bytes())
    with pytest.raises(InputError, match=r"label maps without an image: \['c_seg.nii.gz'\]"):
        import_dataset(tmp_path / "src", tmp_path / "dst2")


def test_nnunet_v2_raw_folder_is_read_as_pairs(tmp_path):
    src = tmp_path / "Dataset003_Liver"
    for i in range(2):
        image, label = tiny_case(i)
        write_nifti_pair(src / "imagesTr" / f"liver_{i:03d}_0000.nii.gz", src / "labelsTr" / f"liver_{i:03d}.nii.gz", image, label)
    meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1}, "numTraining": 2, "file_ending": ".nii.gz"}
    (src / "dataset.json").write_text(json.dumps(meta))
    assert detect_format(src) == "nifti-pairs"
    index = import_dataset(src, tmp_path / "dst", modality="CT").index
    assert [c.case_id for c in index.training] == ["liver_000", "liver_001"]
    assert index.labels == {"background": 0, "liver": 1}
    same_names = tmp_path / "same"
    image, label = tiny_case(0)
    write_nifti_pair(same_names / "images" / "scan_0001.nii.gz", same_names / "labels" / "scan_0001.nii.gz", image, label)
    assert [c.case_id for c in import_dataset(same_names, tmp_path / "dst3").index.training] == ["scan_0001"]
    (src / "imagesTr" / "liver_000_0001.nii.gz").write_bytes((src / "imagesTr" / "liver_000_0000.nii.gz").read_bytes())
    with pytest.raises(InputError, match=r"multi-channel images \(channel suffixes \['0000', '0001'\]\)"):
        import_dataset(src, tmp_path / "dst2")


def test_chaos_import_end_to_end(tmp_path):
    written = write_chaos_case(tmp_path / "src", "CT", 1, num_slices=4, seed=3)
    write_chaos_case(tmp_path / "src", "MR", 2, num_slices=3, seed=4)
    result = import_dataset(tmp_path / "src", tmp_path / "dst", label_spec="liver,spleen")

    index = result.index
    assert [(c.case_id, c.modality) for c in index.training] == [("ct_001", "CT"), ("mr_002_t1in", "MR"), ("mr_002_t2spir", "MR")]
    assert index.labels == {"background": 0, "liver": 1, "spleen": 2}
    ct_label = nifti_io.load_label(index.training[0].label)
    np.testing.assert_array_equal(ct_label.data, np.transpose(written["CT"][1], (2, 1, 0)))
    mr_label = nifti_io.load_label(index.training[1].label).data
    assert set(np.unique(mr_label)) == {0, 1, 2}  # kidneys (2, 3 in CHAOS) dropped, spleen 4 -> 2
    ct_image = nib.load(str(index.training[0].image))
    assert ct_image.get_data_dtype() == np.int16 and np.asarray(ct_image.dataobj).min() >= -1024
    assert result.report["sources"][0]["format"] == "chaos"
    assert result.report["sources"][0]["label_mapping"] == {"liver": [1], "spleen": [4]}


def test_real_ct_with_totalsegmentator_labels_remapped(tmp_path):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    shutil.copyfile(REAL / "ct_abdomen_3mm.nii.gz", src / "images" / "ct_abdomen.nii.gz")
    shutil.copyfile(REAL / "ct_abdomen_3mm_organs.nii.gz", src / "labels" / "ct_abdomen.nii.gz")
    result = import_dataset(src, tmp_path / "dst", label_spec="liver=5,spleen=1,right_kidney=2,left_kidney=3", modality="CT")

    assert result.index.labels == {"background": 0, "liver": 1, "spleen": 2, "right_kidney": 3, "left_kidney": 4}
    organs = np.asarray(nib.load(str(REAL / "ct_abdomen_3mm_organs.nii.gz")).dataobj)
    label = nifti_io.load_label(result.index.training[0].label)
    for source_value, value in [(5, 1), (1, 2), (2, 3), (3, 4)]:
        assert int((label.data == value).sum()) == int((organs == source_value).sum()) > 0
    assert int((label.data > 0).sum()) == int(np.isin(organs, [1, 2, 3, 5]).sum())
    image = nifti_io.load_image(result.index.training[0].image)
    np.testing.assert_array_equal(label.affine, image.affine)
    assert result.checks[0].shape == (122, 101, 30) and result.checks[0].spacing_mm == (3.0, 3.0, 3.0)


def test_real_ct_with_oblique_scaled_header_is_kept_exactly(tmp_path):
    image = nib.load(str(REAL / "ct_abdomen_3mm.nii.gz"))
    rotation = np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    affine = image.affine.copy()
    affine[:3, :3] = rotation @ affine[:3, :3]
    raw = np.asarray(image.dataobj).astype(np.int16)
    scaled = nib.Nifti1Image(((raw + 1024) // 2).astype(np.int16), affine)
    scaled.header.set_slope_inter(2.0, -1024.0)
    write_nifti_pair(tmp_path / "src" / "x.nii.gz", None, np.zeros(1), None)  # creates the folder
    nib.save(scaled, str(tmp_path / "src" / "x.nii.gz"))
    organs = nib.load(str(REAL / "ct_abdomen_3mm_organs.nii.gz"))
    nib.save(nib.Nifti1Image(np.asarray(organs.dataobj), affine), str(tmp_path / "src" / "x_seg.nii.gz"))

    result = import_dataset(tmp_path / "src", tmp_path / "dst", label_spec="liver=5")
    out = nifti_io.load_image(result.index.training[0].image)
    np.testing.assert_allclose(out.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(out.data, ((raw + 1024) // 2) * 2 - 1024)  # scl_slope/inter applied
    proxy = nib.load(str(result.index.training[0].image)).dataobj
    assert (proxy.slope, proxy.inter) == (2.0, -1024.0)


@pytest.mark.parametrize(
    "spec, expected_labels, mapped",
    [
        ("liver=5,spleen=1", {"background": 0, "liver": 1, "spleen": 2}, {5: 1, 1: 2, 3: 0}),
        ("liver=1+2", {"background": 0, "liver": 1}, {1: 1, 2: 1, 3: 0}),
        ("liver,cancer", {"background": 0, "liver": 1, "cancer": 2}, {1: 1, 2: 2}),
    ],
)
def test_parse_label_spec(spec, expected_labels, mapped):
    labels, lut = parse_label_spec(spec, {"background": 0, "liver": 1, "cancer": 2})
    assert labels == expected_labels
    assert {k: int(lut[k]) for k in mapped} == mapped and lut[0] == 0


@pytest.mark.parametrize(
    "spec, message",
    [
        ("liver=1,liver=2", "repeated label name 'liver'"),
        ("liver=1,spleen=1", "source value 1 is given to both 'liver' and 'spleen'"),
        ("liver=kidney", "'kidney' is not a source label"),
        ("background=0", "bad or repeated label name 'background'"),
        ("liver=0", "'0' is not a source label value 1..255"),
    ],
)
def test_parse_label_spec_errors(spec, message):
    with pytest.raises(InputError, match=message):
        parse_label_spec(spec, {"liver": 1})


def test_destination_rules(tmp_path):
    write_msd_task(tmp_path / "src", num_training=1, num_test=0)
    with pytest.raises(InputError, match="destination lies inside the source"):
        import_dataset(tmp_path / "src", tmp_path / "src" / "out")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("precious")
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        import_dataset(tmp_path / "src", tmp_path / "other")
    with pytest.raises(InputError, match="not a dataset directory"):
        import_dataset(tmp_path / "src", tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "precious"
    with pytest.raises(InputError, match="cannot tell the source format"):
        import_dataset(tmp_path / "other", tmp_path / "x")


def test_overwrite_replaces_only_after_success(tmp_path):
    write_msd_task(tmp_path / "src", num_training=2, num_test=0)
    import_dataset(tmp_path / "src", tmp_path / "dst")
    first = tree_fingerprint(tmp_path / "dst")
    nifti_io.save_array(np.full((8, 7, 4), 3.0), np.diag([1.5, 1.5, 3.0, 1.0]), tmp_path / "src" / "imagesTr" / "liver_1.nii.gz")
    with pytest.raises(DatasetProblems, match="liver_1: image liver_1.nii.gz: image is constant"):
        import_dataset(tmp_path / "src", tmp_path / "dst", overwrite=True)
    assert tree_fingerprint(tmp_path / "dst") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]
    write_msd_task(tmp_path / "src", num_training=1, num_test=0)
    (tmp_path / "src" / "imagesTr" / "liver_1.nii.gz").unlink()
    import_dataset(tmp_path / "src", tmp_path / "dst", overwrite=True)
    assert [c.case_id for c in load_dataset(tmp_path / "dst").training] == ["liver_0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]


def test_all_problems_of_all_cases_are_collected(tmp_path):
    write_msd_task(tmp_path / "src", num_training=3, num_test=0)
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    image, label = tiny_case(0)
    image[1, 1, 1] = np.nan
    nifti_io.save_array(image, affine, tmp_path / "src" / "imagesTr" / "liver_0.nii.gz")
    label[0, 0, 0] = 9
    nifti_io.save_array(label, affine, tmp_path / "src" / "labelsTr" / "liver_0.nii.gz")
    nifti_io.save_array(np.zeros((8, 7, 5), np.uint8), affine, tmp_path / "src" / "labelsTr" / "liver_2.nii.gz")
    with pytest.raises(DatasetProblems) as error:
        import_dataset(tmp_path / "src", tmp_path / "dst", empty_labels="error")

    problems = error.value.problems
    assert list(problems) == ["liver_0", "liver_2"]
    assert len(problems["liver_0"]) == 2 and "NaN/Inf" in problems["liver_0"][0] and "[9]" in problems["liver_0"][1]
    assert len(problems["liver_2"]) == 2 and "empty" in problems["liver_2"][0] and "shape" in problems["liver_2"][1]
    assert str(error.value).startswith(f"{(tmp_path / 'src').resolve()}: 4 problems in 2 of 3 cases (first: liver_0: ")
    assert not (tmp_path / "dst").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src"]
