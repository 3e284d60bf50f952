"""`cdseg predict --dicom-seg`: a binary DICOM-SEG per DICOM series, checked by highdicom and dciodvfy."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from deploy_fixtures import affine_for, blob_image, make_threshold_predictor, threshold_card, write_nifti
from pydicom.uid import generate_uid

import keras_cdseg
from keras_cdseg.data.dicom_io import read_series
from keras_cdseg.deploy.dicom_seg import build_dicom_seg, write_dicom_seg
from keras_cdseg.deploy.predict import predict_cases
from keras_cdseg.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_import_builders import shuffled_order, write_series  # noqa: E402  (real DICOM files via pydicom)

ROWS, COLS, NUM_SLICES = 20, 18, 7


def write_chaos_series(folder, modality="CT", extension=True, seed=0):
    """A CHAOS-style series: one file per slice, names shuffled against position, optionally no extension;
    with the Study, Frame of Reference and Patient UIDs real CT/MR files carry (anonymised: no patient name)."""
    rr, cc, kk = np.meshgrid(np.arange(ROWS), np.arange(COLS), np.arange(NUM_SLICES), indexing="ij")
    blob = ((rr - 9) / 6.0) ** 2 + ((cc - 8) / 5.0) ** 2 + ((kk - 3) / 2.5) ** 2 <= 1
    noise = np.random.default_rng(seed).integers(0, 40, blob.shape)
    stored = (np.where(blob, 1300, 900) + noise).astype(np.int16).transpose(2, 0, 1)
    kwargs = {"modality": "MR", "intercept": 0.0, "slope": 0.5} if modality == "MR" else {"modality": modality}
    paths = write_series(folder, stored, gap_mm=5.0, spacing_row_col=(4.0, 4.0),
                         name_order=shuffled_order(NUM_SLICES, seed), **kwargs)  # fmt: skip
    study, frame_of_reference = generate_uid(), generate_uid()
    final = []
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.PatientID = study, frame_of_reference, "chaos-1"
        ds.SeriesNumber = 2
        target = path if extension else path.with_suffix("")
        ds.save_as(target)
        if target != path:
            path.unlink()
        final.append(target)
    return final


def read_back(seg_path, series):
    """The SEG's label map on the series grid (columns, rows, slices), frames matched by source instance."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    uids = [ds.SOPInstanceUID for ds in series.datasets]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    return seg, pixels.transpose(2, 1, 0)


def check_with_dciodvfy(path):
    """dciodvfy's messages for `path`: asserts there is no error; returns the warnings."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        if os.environ.get("CI") is not None:
            pytest.fail("dciodvfy (Debian package dicom3tools) is missing; CI must install it")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools); CI fails instead of skipping")
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert result.returncode == 0 and not errors, "\n".join(lines)
    return [line for line in lines if line.startswith("Warning")]


@pytest.mark.parametrize("modality, extension", [("CT", True), ("MR", False)], ids=["ct", "mr-no-extension"])
def test_dicom_series_gives_a_seg_equal_to_the_nifti_labels_slice_for_source_slice(tmp_path, modality, extension):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    paths = write_chaos_series(tmp_path / "DICOM_anon", modality, extension)
    predictor = make_threshold_predictor(threshold_card())
    results = predict_cases([tmp_path / "DICOM_anon"], tmp_path / "out", predictor, dicom_seg=True)
    seg_path = tmp_path / "out" / "DICOM_anon.seg.dcm"
    assert results[0]["outputs"]["dicom_seg"] == str(seg_path)
    labels = np.asarray(nib.load(str(tmp_path / "out" / "DICOM_anon.nii.gz")).dataobj)
    assert 0 < labels.sum() < labels.size
    series = read_series(paths)
    seg, mask = read_back(seg_path, series)
    np.testing.assert_array_equal(mask, labels)

    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    source = series.datasets[0]
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == "chaos-1"
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in series.datasets}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    # Every frame points at the source instance of its slice (frames are not in file-name order).
    by_uid = {ds.SOPInstanceUID: k for k, ds in enumerate(series.datasets)}
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source_uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_array_equal(seg.pixel_array[index].T, labels[:, :, by_uid[source_uid]] == 1)
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "liver" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert hd.sr.CodedConcept.from_dataset(segment.SegmentedPropertyTypeCodeSequence[0]) == codes.SCT.Liver
    category = hd.sr.CodedConcept.from_dataset(segment.SegmentedPropertyCategoryCodeSequence[0])
    assert category == codes.cid7150.AnatomicalStructure
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "keras_cdseg" and algorithm.AlgorithmVersion == keras_cdseg.__version__
    assert check_with_dciodvfy(seg_path) is not None


def test_several_organs_get_their_snomed_codes_and_dciodvfy_accepts_them(tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    series = read_series(write_chaos_series(tmp_path / "s", "MR", extension=False, seed=3))
    labels = np.zeros(series.data.shape, dtype=np.uint8)
    labels[2:8, 3:9, 1:4] = 1
    labels[10:14, 2:6, 2:6] = 3
    labels[12:16, 12:17, 0:2] = 4  # spleen (2) is empty everywhere: a segment without frames
    class_labels = {"background": 0, "liver": 1, "spleen": 2, "right_kidney": 3, "left_kidney": 4}
    path = write_dicom_seg(tmp_path / "organs.seg.dcm", labels, series.datasets, class_labels, model_description="m")
    seg, mask = read_back(path, series)
    names = {s.SegmentNumber: s.SegmentLabel for s in seg.SegmentSequence}
    assert names == {1: "liver", 2: "spleen", 3: "right_kidney", 4: "left_kidney"}
    np.testing.assert_array_equal(mask, labels)  # label values 1..4 happen to equal segment numbers here
    types = [hd.sr.CodedConcept.from_dataset(s.SegmentedPropertyTypeCodeSequence[0]) for s in seg.SegmentSequence]
    assert types[:2] == [codes.SCT.Liver, codes.SCT.Spleen]
    assert [(t.value, t.scheme_designator) for t in types[2:]] == [("9846003", "SCT"), ("18639004", "SCT")]
    check_with_dciodvfy(path)


def test_label_values_are_renumbered_into_consecutive_segments(tmp_path):
    series = read_series(write_chaos_series(tmp_path / "s", seed=1))
    labels = np.zeros(series.data.shape, dtype=np.uint8)
    labels[2:8, 3:9, 1:4] = 5
    seg = build_dicom_seg(labels, series.datasets, {"background": 0, "liver": 5})
    assert [s.SegmentNumber for s in seg.SegmentSequence] == [1]
    uids = [ds.SOPInstanceUID for ds in series.datasets]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    np.testing.assert_array_equal(pixels.transpose(2, 1, 0), (labels == 5).astype(np.uint8))


def test_a_source_without_frame_of_reference_is_an_input_error(tmp_path):
    paths = write_chaos_series(tmp_path / "s", seed=2)
    ds = pydicom.dcmread(paths[3])
    del ds.FrameOfReferenceUID
    ds.save_as(paths[3])
    series = read_series(paths)
    with pytest.raises(InputError, match="no FrameOfReferenceUID; cannot write a DICOM-SEG"):
        build_dicom_seg(np.zeros(series.data.shape, np.uint8), series.datasets, {"background": 0, "liver": 1})


def test_dicom_seg_for_a_nifti_input_is_a_one_line_error(tmp_path, run_dir):
    from cdseg.main import cli

    shape = (16, 16, 6)
    affine = affine_for("RAS", (4.0, 4.0, 5.0), shape)
    scan = write_nifti(tmp_path / "scan.nii.gz", blob_image(shape, affine)[0], affine)
    result = CliRunner().invoke(cli, ["predict", str(scan), "-o", str(tmp_path / "out"), "--model", str(run_dir),
                                      "--dicom-seg"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: {scan}: --dicom-seg needs a DICOM series folder as input; this input is NIfTI"
    ]
    assert not (tmp_path / "out").exists()


def test_installed_cli_turns_a_chaos_series_into_a_valid_dicom_seg(tmp_path, run_dir):
    series_dir = tmp_path / "CT" / "1" / "DICOM_anon"
    paths = write_chaos_series(series_dir, "CT", extension=False)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    command = [shutil.which("cdseg") or "cdseg", "predict", str(series_dir), "-o", str(tmp_path / "out"),
               "--model", str(run_dir), "--dicom-seg", "--no-postprocess"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    seg_path = tmp_path / "out" / "DICOM_anon.seg.dcm"
    labels = np.asarray(nib.load(str(tmp_path / "out" / "DICOM_anon.nii.gz")).dataobj)
    _, mask = read_back(seg_path, read_series(paths))
    np.testing.assert_array_equal(mask, labels)
    check_with_dciodvfy(seg_path)
