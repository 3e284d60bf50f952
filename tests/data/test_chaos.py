import numpy as np
import pytest
from test_import_builders import read_dicom, write_chaos_case, write_png

from keras_cdseg.data.importing.chaos import ChaosScan, decode_ground_png, discover_chaos, find_chaos_roots, read_chaos_scan
from keras_cdseg.errors import InputError


def test_ct_scan_pairs_png_by_name_and_stacks_by_position(tmp_path):
    written = write_chaos_case(tmp_path, "CT", 1, num_slices=6, rows=12, cols=10, seed=5)
    stored, masks = written["CT"]
    (scan,) = discover_chaos(tmp_path, sequences=("ct",))
    assert scan == ChaosScan("ct_001", "CT", tmp_path / "CT" / "1" / "DICOM_anon", tmp_path / "CT" / "1" / "Ground")

    series, label, warnings = read_chaos_scan(scan)
    assert warnings == []
    assert series.data.shape == label.shape == (10, 12, 6)
    for k in range(6):  # slice k in position order, whatever the file names say
        np.testing.assert_array_equal(series.data[:, :, k], stored[k].T.astype(np.int32) - 1024)
        np.testing.assert_array_equal(label[:, :, k], masks[k].T)
    assert set(np.unique(label)) == {0, 1}


def test_mr_grey_values_decode_to_four_organs(tmp_path):
    written = write_chaos_case(tmp_path, "MR", 2, num_slices=4, seed=1, sequences=("InPhase", "OutPhase", "T2SPIR"))
    scans = discover_chaos(tmp_path, sequences=("t1in", "t1out", "t2spir"))
    assert [s.case_id for s in scans] == ["mr_002_t1in", "mr_002_t1out", "mr_002_t2spir"]
    for scan, sequence in zip(scans, ["InPhase", "OutPhase", "T2SPIR"]):
        stored, masks = written[sequence]
        series, label, warnings = read_chaos_scan(scan)
        assert warnings == []
        assert series.modality == "MR"
        np.testing.assert_array_equal(series.data, np.transpose(stored, (2, 1, 0)))
        np.testing.assert_array_equal(label, np.transpose(masks, (2, 1, 0)))
        assert set(np.unique(label)) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    "grey, modality, expected, num_off_range",
    [
        ([0, 55, 63, 70, 110, 135, 175, 200, 240, 255], "MR", [0, 1, 1, 1, 2, 2, 3, 3, 4, 4], 0),
        ([54, 71, 100, 201, 0, 0, 0, 0, 0, 0], "MR", [0] * 10, 4),
        ([0, 1, 255, 0, 0, 0, 0, 0, 0, 0], "CT", [0, 1, 1, 0, 0, 0, 0, 0, 0, 0], 0),
    ],
)
def test_decode_ground_png_range_edges(tmp_path, grey, modality, expected, num_off_range):
    write_png(tmp_path / "g.png", np.array([grey], dtype=np.uint8))
    labels, num_bad = decode_ground_png(tmp_path / "g.png", modality, (1, 10))
    np.testing.assert_array_equal(labels[0], expected)
    assert num_bad == num_off_range


def test_off_range_grey_values_give_a_warning(tmp_path):
    write_chaos_case(tmp_path, "MR", 3, num_slices=3, sequences=("T2SPIR",))
    ground = tmp_path / "MR" / "3" / "T2SPIR" / "Ground"
    first = sorted(ground.glob("*.png"))[0]
    write_png(first, np.full((12, 10), 100, dtype=np.uint8))
    _, label, warnings = read_chaos_scan(discover_chaos(tmp_path, ("t2spir",))[0])
    assert warnings == ["120 ground-truth pixels with grey values outside the CHAOS organ ranges set to background"]


def test_png_count_and_size_mismatch_are_errors(tmp_path):
    write_chaos_case(tmp_path, "CT", 4, num_slices=4)
    ground = tmp_path / "CT" / "4" / "Ground"
    sorted(ground.glob("*.png"))[-1].unlink()
    (scan,) = discover_chaos(tmp_path, ("ct",))
    with pytest.raises(InputError, match=r"CT/4/Ground: 3 ground-truth PNGs for 4 DICOM slices in DICOM_anon/"):
        read_chaos_scan(scan)
    write_png(ground / "liver_GT_003.png", np.zeros((11, 10)))
    with pytest.raises(InputError, match=r"liver_GT_003.png: PNG size \(11, 10\) differs from the DICOM slice size"):
        read_chaos_scan(scan)


def test_missing_slice_in_chaos_folder_is_an_error(tmp_path):
    write_chaos_case(tmp_path, "CT", 5, num_slices=5, with_ground=False)
    dicom_dir = tmp_path / "CT" / "5" / "DICOM_anon"
    files = sorted(dicom_dir.glob("*.dcm"))
    positions = {f: float(read_dicom(f).ImagePositionPatient[2]) for f in files}
    middle = sorted(files, key=positions.get)[2]
    middle.unlink()
    (scan,) = discover_chaos(tmp_path, ("ct",))
    assert scan.ground_dir is None
    with pytest.raises(InputError, match="CT/5/DICOM_anon: missing slices: gap of 5 mm"):
        read_chaos_scan(scan)


def test_train_and_test_sets_are_found_below_the_given_folder(tmp_path):
    write_chaos_case(tmp_path / "CHAOS_Train_Sets" / "Train_Sets", "CT", 1, num_slices=2)
    write_chaos_case(tmp_path / "CHAOS_Test_Sets" / "Test_Sets", "CT", 3, num_slices=2, with_ground=False)
    assert [p.name for p in find_chaos_roots(tmp_path)] == ["Test_Sets", "Train_Sets"]
    scans = discover_chaos(tmp_path, ("ct", "t1in"))
    assert [(s.case_id, s.ground_dir is not None) for s in scans] == [("ct_003", False), ("ct_001", True)]
    series, label, _ = read_chaos_scan(scans[0])
    assert label is None and series.data.shape == (10, 12, 2)


def test_unknown_sequence_and_missing_sequence_folder(tmp_path):
    write_chaos_case(tmp_path, "MR", 1, num_slices=2, sequences=("InPhase",))
    with pytest.raises(InputError, match=r"--sequences: unknown CHAOS sequences \['t1'\]"):
        discover_chaos(tmp_path, ("t1",))
    with pytest.raises(InputError, match=r"mr_001_t2spir: folder T2SPIR/DICOM_anon/ not found"):
        discover_chaos(tmp_path, ("t1in", "t2spir"))
    with pytest.raises(InputError, match="no CHAOS"):
        discover_chaos(tmp_path / "MR" / "1", ("t1in",))
