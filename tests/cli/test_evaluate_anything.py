"""`cdseg evaluate` against another tool's labels: single files, a value mapping between prediction and
reference (TotalSegmentator's liver = 5), a warning naming values not evaluated, a reference folder that also
holds the scan, and the shared option spellings (-q/-v, --postprocess)."""

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from cdseg.main import cli

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
SCAN, ORGANS = REAL / "ct_abdomen_3mm.nii.gz", REAL / "ct_abdomen_3mm_organs.nii.gz"
TOTALSEG_LIVER, TOTALSEG_SPLEEN = 5, 1


@pytest.fixture(scope="module")
def organs():
    img = nib.load(str(ORGANS))
    return np.asarray(img.dataobj), img.affine


def _save(path, data, affine):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.uint8), affine), str(path))
    return path


def _our_prediction(organs, shift=0):
    """A cdseg-style prediction (liver = 1) of the real CT: the reference liver, shifted by `shift` slices."""
    data, affine = organs
    liver = np.roll(data == TOTALSEG_LIVER, shift, axis=2)
    return liver.astype(np.uint8), affine


def _run(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def _report(out):
    return json.loads((Path(out) / "report.json").read_text())


@pytest.mark.parametrize("mapping", [["--labels", "liver=1:5"], ["--labels", "liver=1", "--ref-labels", "liver=5"]])
def test_single_files_with_a_value_mapping(tmp_path, organs, mapping):
    seg = _save(tmp_path / "seg.nii.gz", *_our_prediction(organs))
    result = _run("--pred", seg, "--ref", ORGANS, *mapping, "--no-overlays")
    assert result.exit_code == 0, result.output
    report = _report(tmp_path / "seg_evaluation")  # default: <prediction name>_evaluation beside it
    (case,) = report["cases"]
    assert case["case_id"] == "seg" and case["classes"]["liver"]["dice"] == 1.0
    assert report["settings"]["label_mapping"] == {"liver": {"prediction": 1, "reference": 5}}
    # Every other TotalSegmentator structure (40 values besides background and liver) is present but not evaluated, and said so.
    unevaluated = report["settings"]["unevaluated_label_values"]
    assert unevaluated["prediction"] == {} and len(unevaluated["reference"]) == 40 and "5" not in unevaluated["reference"]
    warning = next(line for line in result.output.splitlines() if line.startswith("Warning:"))
    assert "reference values 1, 2, 3" in warning and "--labels name=pred:ref" in warning


def test_a_wrong_mapping_is_no_longer_silent(tmp_path, organs):
    """Issue 19: --labels liver=1 against TotalSegmentator's map scores our liver against its spleen (value 1)."""
    seg = _save(tmp_path / "seg.nii.gz", *_our_prediction(organs))
    result = _run("--pred", seg, "--ref", ORGANS, "--labels", "liver=1", "--out", tmp_path / "rep", "--no-overlays")
    assert result.exit_code == 0, result.output
    assert _report(tmp_path / "rep")["cases"][0]["classes"]["liver"]["dice"] == 0.0
    warning = next(line for line in result.output.splitlines() if line.startswith("Warning:"))
    assert f", {TOTALSEG_LIVER}, " in warning and "ct_abdomen_3mm_organs" not in warning


def test_values_of_the_prediction_that_are_not_evaluated_are_named(tmp_path, organs):
    data, affine = _our_prediction(organs)
    data[:5, :5, :2] = 7  # a stray class the reference mapping does not name
    seg = _save(tmp_path / "pred" / "seg.nii.gz", data, affine)
    result = _run("--pred", seg, "--ref", ORGANS, "--labels", "liver=1:5,spleen=2:1", "--out", tmp_path / "rep", "-q")
    assert result.exit_code == 0, result.output
    report = _report(tmp_path / "rep")
    assert report["settings"]["unevaluated_label_values"]["prediction"] == {"7": 1}
    assert report["cases"][0]["classes"]["spleen"]["num_voxels_pred"] == 0  # reference spleen = 1 is not our liver
    assert "prediction values 7 (seg)" in result.output


def test_a_reference_folder_that_also_holds_the_scan(tmp_path, organs):
    """TotalSegmentator's habit: ct.nii.gz and ct_organs.nii.gz side by side; our prediction is ct.nii.gz."""
    ref = tmp_path / "real"
    ref.mkdir()
    shutil.copy(SCAN, ref / SCAN.name)
    shutil.copy(ORGANS, ref / ORGANS.name)
    pred = tmp_path / "pred"
    _save(pred / SCAN.name, *_our_prediction(organs, shift=1))
    result = _run("--pred", pred, "--ref", ref, "--labels", "liver=1:5", "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert "1 scan(s)" in result.output and SCAN.name in result.output
    report = _report(tmp_path / "rep")
    (case,) = report["cases"]
    assert case["case_id"] == "ct_abdomen_3mm" and 0.5 < case["classes"]["liver"]["dice"] < 1.0
    assert (tmp_path / "rep" / "overlays" / "ct_abdomen_3mm.png").is_file()
    # One prediction file against the folder: matched by its case name.
    single = _run("--pred", pred / SCAN.name, "--ref", ref, "--labels", "liver=1:5", "--out", tmp_path / "rep1", "-q")
    assert single.exit_code == 0, single.output
    assert _report(tmp_path / "rep1")["cases"][0]["classes"]["liver"]["dice"] == case["classes"]["liver"]["dice"]


def test_a_reference_folder_of_scans_only_is_an_error(tmp_path, organs):
    (tmp_path / "scans").mkdir()
    shutil.copy(SCAN, tmp_path / "scans" / "ct.nii.gz")
    _save(tmp_path / "pred" / "ct.nii.gz", *_our_prediction(organs))
    result = _run("--pred", tmp_path / "pred", "--ref", tmp_path / "scans")
    assert result.exit_code == 2 and "holds no label map, only 1 scan(s)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--labels", "liver=1:x"], "name=pred:ref"),
        (["--labels", "liver=1", "--ref-labels", "spleen=1"], "'spleen' is not evaluated"),
        (["--labels", "liver=1:5", "--ref-labels", "liver=6"], "reference value 5 in --labels and 6"),
        (["--labels", "liver=1:5,spleen=2:5"], "share a reference value"),
        (["--postprocess", "--no-largest-component"], "not both"),
        (["--no-postprocess", "--largest-component", "liver"], "not both"),
    ],
)
def test_bad_label_and_postprocess_options_are_one_line_errors(tmp_path, organs, options, fragment):
    seg = _save(tmp_path / "seg.nii.gz", *_our_prediction(organs))
    result = _run("--pred", seg, "--ref", ORGANS, *options)
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("Error:") and fragment in line, line


def test_postprocess_verbose_and_help(tmp_path, organs):
    data, affine = _our_prediction(organs)
    data[0:3, 0:3, 0:3] = 1  # an island far from the liver
    seg = _save(tmp_path / "seg.nii.gz", data, affine)
    common = ["--pred", seg, "--ref", ORGANS, "--labels", "liver=1:5", "--no-overlays"]
    as_given = _run(*common, "--out", tmp_path / "a", "-v")
    assert as_given.exit_code == 0 and "seg: liver Dice " in as_given.output, as_given.output
    processed = _run(*common, "--out", tmp_path / "b", "--postprocess", "--quiet")
    assert processed.exit_code == 0, processed.output
    liver_a, liver_b = (_report(tmp_path / d)["cases"][0]["classes"]["liver"] for d in "ab")
    assert liver_a["largest_component"] is False and liver_b["largest_component"] is True
    assert liver_b["dice"] == 1.0 > liver_a["dice"]
    assert _report(tmp_path / "b")["settings"]["largest_component_classes"] == ["liver"]
    text = " ".join(CliRunner().invoke(cli, ["evaluate", "--help"]).output.split())
    for fragment in ("-q, --quiet", "-v, --verbose", "--postprocess / --no-postprocess", "--ref-labels",
                     "off with --pred/--ref", "a dataset.json beside --ref"):  # fmt: skip
        assert fragment in text, fragment
    assert "--largest-component" not in text  # kept as a hidden alias


def test_installed_script_with_single_files(tmp_path, organs):
    seg = _save(tmp_path / "seg.nii.gz", *_our_prediction(organs))
    cdseg = shutil.which("cdseg")
    assert cdseg is not None
    done = subprocess.run([cdseg, "evaluate", "--pred", seg, "--ref", ORGANS, "--labels", "liver=1:5", "-q",
                           "--no-overlays", "--out", tmp_path / "r"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "liver: overall score (chaos) all 100.00" in done.stdout and "Warning: label values" in done.stderr
