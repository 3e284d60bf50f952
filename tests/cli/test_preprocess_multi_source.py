"""`cdseg preprocess SRC [SRC ...] DST`: several sources (CT and MR from different archives) into one dataset."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from test_import_builders import tiny_case, tree_fingerprint, write_chaos_case, write_msd_task, write_nifti_pair  # noqa: E402

from cdseg.main import cli  # noqa: E402
from keras_cdseg.data import nifti_io  # noqa: E402
from keras_cdseg.data.dataset import load_dataset  # noqa: E402

AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])
# Organ values as the two archives number them (BTCV: liver 6, spleen 1; the MR archive: liver 1, spleen 4).
CT_VALUES, MR_VALUES = {"liver": 6, "spleen": 1}, {"liver": 1, "spleen": 4}


def _source(folder, prefix, values, num_cases=2, seed=0):
    """NIfTI pairs in images/ + labels/ with a liver and a spleen numbered as `values`; 7 is another organ."""
    for i in range(num_cases):
        image, label = tiny_case(seed + i)
        label[label > 0] = values["liver"]
        label[5:7, 0:2, :] = values["spleen"]
        label[0, 6, 0] = 7
        write_nifti_pair(folder / "images" / f"{prefix}_{i}.nii.gz", folder / "labels" / f"{prefix}_{i}.nii.gz", image, label)
    return folder


def _run(*args):
    result = CliRunner().invoke(cli, ["preprocess", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def _error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("Error: ")]


def _assert_nothing_written(tmp_path, *sources_before):
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p, _ in sources_before)
    for path, before in sources_before:
        assert tree_fingerprint(path) == before


def test_options_once_per_source_give_one_dataset_with_the_sources_recorded(tmp_path):
    ct, mr = _source(tmp_path / "ct", "ct", CT_VALUES), _source(tmp_path / "mr", "mr", MR_VALUES, num_cases=3, seed=5)
    before = tree_fingerprint(ct), tree_fingerprint(mr)
    result = _run(ct, mr, tmp_path / "abdomen", "--modality", "CT", "--modality", "MR",
                  "--labels", "liver=6,spleen=1", "--labels", "liver=1,spleen=4")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "5 training, 0 test cases (2 CT, 3 MR); format nifti-pairs + nifti-pairs" in result.output
    assert (tree_fingerprint(ct), tree_fingerprint(mr)) == before
    index = load_dataset(tmp_path / "abdomen")
    assert index.labels == {"background": 0, "liver": 1, "spleen": 2}
    assert [(c.case_id, c.modality) for c in index.training] == [
        ("ct_0", "CT"), ("ct_1", "CT"), ("mr_0", "MR"), ("mr_1", "MR"), ("mr_2", "MR"),
    ]  # fmt: skip
    for case in index.training:
        values = CT_VALUES if case.modality == "CT" else MR_VALUES
        source = nifti_io.load_label((ct if case.modality == "CT" else mr) / "labels" / case.label.name).data
        written = nifti_io.load_label(case.label).data
        np.testing.assert_array_equal(written == 1, source == values["liver"])
        np.testing.assert_array_equal(written == 2, source == values["spleen"])
        assert set(np.unique(written)) == {0, 1, 2}  # value 7 (another organ) became background
        assert case.image.read_bytes() == ((ct if case.modality == "CT" else mr) / "images" / case.image.name).read_bytes()

    report = json.loads((tmp_path / "abdomen" / "preprocess.json").read_text())
    assert [(s["path"], s["format"], s["modality"], s["label_mapping"], s["num_cases"]) for s in report["sources"]] == [
        (str(ct), "nifti-pairs", "CT", {"liver": [6], "spleen": [1]}, 2),
        (str(mr), "nifti-pairs", "MR", {"liver": [1], "spleen": [4]}, 3),
    ]
    first_mr = report["cases"][2]
    assert first_mr["source"] == {"path": str(mr), "format": "nifti-pairs", "modality": "MR", "label_mapping": {"liver": [1], "spleen": [4]}}
    assert first_mr["image_source"] == str(mr / "images" / "mr_0.nii.gz")
    assert set(first_mr["label_voxels"]) == {"0", "1", "2"}


def test_options_given_once_apply_to_every_source(tmp_path):
    a, b = _source(tmp_path / "a", "a", MR_VALUES), _source(tmp_path / "b", "b", MR_VALUES, seed=3)
    result = _run(a, b, tmp_path / "dst", "--format", "nifti-pairs", "--modality", "MR", "--labels", "liver=1,spleen=4", "-q")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [line for line in result.output.splitlines() if line.startswith("Wrote ")]
    index = load_dataset(tmp_path / "dst")
    assert {c.modality for c in index.training} == {"MR"} and len(index.training) == 4
    assert index.labels == {"background": 0, "liver": 1, "spleen": 2}


def test_identity_labels_copy_the_label_maps_byte_for_byte(tmp_path):
    values = {"liver": 1, "spleen": 2}
    a, b = _source(tmp_path / "a", "a", values), _source(tmp_path / "b", "b", values, seed=3)
    for label in [*(a / "labels").iterdir(), *(b / "labels").iterdir()]:
        data = nifti_io.load_label(label).data
        nifti_io.save_array(np.where(data == 7, 0, data), AFFINE, label, dtype=np.uint8)  # only the listed organs
    result = _run(a, b, tmp_path / "dst", "--labels", "liver=1,spleen=2", "-v")

    assert result.exit_code == 0, result.output
    assert "source " + str(a) + ": format detected, modality from the source, labels liver=1,spleen=2" in result.output
    assert "voxels per label value {0: " in result.output
    for case in load_dataset(tmp_path / "dst").training:
        source = (a if case.case_id.startswith("a") else b) / "labels" / case.label.name
        assert case.label.read_bytes() == source.read_bytes()


@pytest.mark.parametrize("option, values", [
    ("--format", ["nifti-pairs", "msd"]), ("--modality", ["CT", "MR"]), ("--labels", ["liver=1", "liver=6"]),
])  # fmt: skip
def test_an_option_given_neither_once_nor_once_per_source_is_an_error(tmp_path, option, values):
    sources = [_source(tmp_path / name, name, MR_VALUES) for name in ("a", "b", "c")]
    before = [(s, tree_fingerprint(s)) for s in sources]
    args = [item for value in values for item in (option, value)]
    result = _run(*sources, tmp_path / "dst", *args)

    assert result.exit_code == 2
    assert _error_lines(result) == [f"Error: {option}: given 2 times for 3 sources; give it once (for every source) or once per source"]
    _assert_nothing_written(tmp_path, *before)


def test_case_id_clash_between_sources_names_both_files(tmp_path):
    a, b = _source(tmp_path / "a", "case", MR_VALUES), _source(tmp_path / "b", "case", MR_VALUES, num_cases=1, seed=4)
    before = [(a, tree_fingerprint(a)), (b, tree_fingerprint(b))]
    result = _run(a, b, tmp_path / "dst", "--labels", "liver=1,spleen=4")

    assert result.exit_code == 2
    (error,) = _error_lines(result)
    assert error == (
        f"Error: case_0: case id clash: {a / 'images' / 'case_0.nii.gz'} and {b / 'images' / 'case_0.nii.gz'} "
        "(rename one source's files); nothing written"
    )
    _assert_nothing_written(tmp_path, *before)


def test_one_bad_case_in_one_source_writes_nothing_and_all_problems_are_listed(tmp_path):
    a, b = _source(tmp_path / "a", "a", CT_VALUES), _source(tmp_path / "b", "b", MR_VALUES, num_cases=3)
    nifti_io.save_array(np.full((8, 7, 4), 5.0, np.float32), AFFINE, b / "images" / "b_1.nii.gz")
    orphan = tmp_path / "c" / "labels" / "lonely.nii.gz"
    write_nifti_pair(tmp_path / "c" / "images" / "c_0.nii.gz", orphan, *tiny_case(9))
    (tmp_path / "c" / "images" / "c_0.nii.gz").unlink()
    before = [(s, tree_fingerprint(s)) for s in (a, b, tmp_path / "c")]
    result = _run(a, b, tmp_path / "c", tmp_path / "out" / "dst", "--labels", "liver=6,spleen=1", "--labels", "liver=1,spleen=4",
                  "--labels", "liver=1,spleen=4")  # fmt: skip

    assert result.exit_code == 2
    fails = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert fails == [
        f"FAIL  {tmp_path / 'c'}: {tmp_path / 'c' / 'labels'}: label maps without an image in images/: ['lonely.nii.gz']",
        "FAIL  b_1: image b_1.nii.gz: image is constant (every voxel = 5)",
    ]
    (error,) = _error_lines(result)
    assert "2 problems in 2 of 6 cases" in error and error.endswith("nothing written")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    for path, fingerprint in before:
        assert tree_fingerprint(path) == fingerprint


def test_sources_must_label_the_same_structures(tmp_path):
    a, b = _source(tmp_path / "a", "a", CT_VALUES), _source(tmp_path / "b", "b", MR_VALUES)
    result = _run(a, b, tmp_path / "dst", "--labels", "liver=6", "--labels", "liver=1,spleen=4")

    assert result.exit_code == 2
    (error,) = _error_lines(result)
    assert error == (
        f"Error: {b}: labels ['liver', 'spleen'] differ from ['liver'] of {a}; every source must label the same "
        "structures (choose them with --labels); nothing written"
    )
    assert not (tmp_path / "dst").exists()


def test_labels_listed_in_another_order_are_aligned_by_name(tmp_path):
    a, b = _source(tmp_path / "a", "a", CT_VALUES), _source(tmp_path / "b", "b", MR_VALUES)
    result = _run(a, b, tmp_path / "dst", "--labels", "spleen=1,liver=6", "--labels", "liver=1,spleen=4")

    assert result.exit_code == 0, result.output
    index = load_dataset(tmp_path / "dst")
    assert index.labels == {"background": 0, "spleen": 1, "liver": 2}
    b_source = nifti_io.load_label(b / "labels" / "b_0.nii.gz").data
    b_written = nifti_io.load_label(index.training[2].label).data
    np.testing.assert_array_equal(b_written == 2, b_source == 1)
    np.testing.assert_array_equal(b_written == 1, b_source == 4)
    report = json.loads((tmp_path / "dst" / "preprocess.json").read_text())
    assert report["sources"][1]["label_mapping"] == {"spleen": [4], "liver": [1]}


def test_btcv_download_and_chaos_t2spir_recipe(tmp_path):
    """The recipe of docs/import.md for the original downloads: BTCV RawData + CHAOS DICOM/PNG."""
    raw = tmp_path / "RawData"
    for i in (1, 2):
        image, label = tiny_case(i)
        label[label > 0] = 6
        label[5:7, 0:2, :], label[0:2, 0:2, 0], label[0:2, 5:7, 0], label[7, 6, 3] = 1, 2, 3, 11
        write_nifti_pair(raw / "Training" / "img" / f"img{i:04d}.nii.gz", raw / "Training" / "label" / f"label{i:04d}.nii.gz", image, label)
    write_nifti_pair(raw / "Testing" / "img" / "img0061.nii.gz", None, tiny_case(3)[0], None)
    chaos = tmp_path / "CHAOS_Train_Sets" / "Train_Sets"
    written = write_chaos_case(chaos, "MR", 2, num_slices=4, sequences=("InPhase", "T2SPIR"))
    write_chaos_case(chaos, "CT", 1, num_slices=3)
    result = _run(raw, tmp_path / "CHAOS_Train_Sets", tmp_path / "abdomen", "--format", "nifti-pairs", "--format", "chaos",
                  "--sequences", "t2spir", "--modality", "CT", "--modality", "MR",
                  "--labels", "liver=6,right_kidney=2,left_kidney=3,spleen=1",
                  "--labels", "liver,right_kidney,left_kidney,spleen")  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "3 training, 1 test cases (3 CT, 1 MR); format nifti-pairs + chaos" in result.output
    index = load_dataset(tmp_path / "abdomen")
    assert index.labels == {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
    assert [(c.case_id, c.modality) for c in index.training] == [("img0001", "CT"), ("img0002", "CT"), ("mr_002_t2spir", "MR")]
    assert [(c.case_id, c.label) for c in index.test] == [("img0061", None)]
    ct_label = nifti_io.load_label(index.training[0].label).data
    assert set(np.unique(ct_label)) == {0, 1, 2, 3, 4} and ct_label[7, 6, 3] == 0  # organ 11 dropped
    mr_label = nifti_io.load_label(index.training[2].label).data
    np.testing.assert_array_equal(mr_label, np.transpose(written["T2SPIR"][1], (2, 1, 0)))


def test_modality_contradicting_the_source_is_an_error(tmp_path):
    write_chaos_case(tmp_path / "chaos", "MR", 2, num_slices=3, sequences=("InPhase", "T2SPIR"))
    write_msd_task(tmp_path / "msd", num_training=1, num_test=0)
    result = _run(tmp_path / "msd", tmp_path / "chaos", tmp_path / "dst", "--modality", "CT", "--sequences", "t2spir")

    assert result.exit_code == 2
    assert _error_lines(result) == [
        f"Error: {tmp_path / 'chaos'}: CHAOS scans of modality MR selected by --sequences; --modality CT contradicts it"
    ]
    result = _run(tmp_path / "msd", tmp_path / "dst", "--modality", "MR")
    assert _error_lines(result) == [f"Error: {tmp_path / 'msd' / 'dataset.json'}: records modality CT for liver_0; --modality MR contradicts it"]
    assert not (tmp_path / "dst").exists()


def test_usage_errors(tmp_path):
    one = _run(tmp_path / "a")
    assert one.exit_code == 2 and _error_lines(one) == [
        "Error: SRC [SRC ...] DST: need at least one source folder and the destination, got 1 path(s)"
    ]
    both = _run(tmp_path / "a", tmp_path / "dst", "-q", "-v")
    assert both.exit_code == 2 and "-q/--quiet and -v/--verbose exclude each other" in both.output
    missing = _run(tmp_path / "a", tmp_path / "dst")
    assert missing.exit_code == 2 and _error_lines(missing) == [f"Error: {tmp_path / 'a'}: source folder not found"]
    two_missing = _run(tmp_path / "a", tmp_path / "b", tmp_path / "dst")
    assert two_missing.exit_code == 2 and [line for line in two_missing.output.splitlines() if line.startswith("FAIL")] == [
        f"FAIL  {tmp_path / 'a'}: source folder not found", f"FAIL  {tmp_path / 'b'}: source folder not found",
    ]  # fmt: skip
    assert "2 problems in 2 of 2 cases" in _error_lines(two_missing)[0]
