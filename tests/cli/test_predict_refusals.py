"""`cdseg predict` says no before TensorFlow starts when no model is needed to say it (unwritable or existing
output, missing input, nothing to segment, a label map given as a scan), names what a folder's listing
skipped, and takes inputs as `-i` too."""

import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from cdseg.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_fixtures import affine_for, blob_image, write_nifti  # noqa: E402

SHAPE = (30, 26, 9)
# Checked before the model: a model path that does not exist proves the refusal never got that far.
NO_MODEL = ("--model", "/nonexistent/model")


@pytest.fixture
def scans(tmp_path):
    """scans/scan_0.nii.gz (a CT-like image) and label.nii.gz (its organ mask: values 0 and 1)."""
    affine = affine_for("LPS", (3.5, 3.0, 5.0), SHAPE)
    image, mask = blob_image(SHAPE, affine)
    write_nifti(tmp_path / "scans" / "scan_0.nii.gz", image, affine)
    write_nifti(tmp_path / "label.nii.gz", np.asarray(mask, np.uint8), affine)
    return tmp_path


def _refusal_before_tensorflow(args, cwd):
    """(exit code, stderr, seconds, tensorflow imported?) of `cdseg predict ARGS` in a new process."""
    code = ("import sys\nfrom cdseg.main import cli\n"
            f"try:\n    cli(['predict', *{[str(a) for a in args]!r}])\nexcept SystemExit as e:\n    code = e.code\n"
            "print(code, 'tensorflow' in sys.modules)")  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)
    seconds = time.perf_counter() - start
    exit_code, imported = result.stdout.strip().splitlines()[-1].split()
    return int(exit_code), result.stderr, seconds, imported == "True"


def test_refusals_that_need_no_model_come_before_tensorflow(scans):
    scan = scans / "scans" / "scan_0.nii.gz"
    (scans / "done").mkdir()
    (scans / "done" / "scan_0.nii.gz").write_bytes(b"an earlier result")
    (scans / "notes").mkdir()
    (scans / "notes" / "readme.txt").write_text("not a scan")
    cases = [
        ([scan, "-o", "/proc/x.nii.gz"], ["Error: /proc/x.nii.gz: cannot write in /proc"]),
        ([scan, "-o", scans / "done"], [f"Error: {scans / 'done' / 'scan_0.nii.gz'}: output exists; pass --overwrite"]),
        (["-i", scans / "missing.nii.gz", "-o", scans / "out"], ["missing.nii.gz: input not found"]),
        ([scans / "notes", "-o", scans / "out"], ["notes: nothing to segment", "readme.txt: neither NIfTI nor DICOM"]),
        ([scans / "label.nii.gz", "-o", scans / "out"], ["label.nii.gz: looks like a label map", "values: 0, 1)"]),
    ]
    for args, fragments in cases:
        exit_code, stderr, seconds, imported = _refusal_before_tensorflow([*args, *NO_MODEL], scans)
        lines = stderr.strip().splitlines()
        assert exit_code == 2 and len(lines) == 1, (args, stderr)
        assert all(fragment in lines[0] for fragment in fragments), (args, lines[0])
        assert ".tmp" not in lines[0]
        assert not imported, f"{args}: TensorFlow was imported before the refusal"
        # The interpreter and nibabel start in ~0.3 s on a quiet machine; this bound leaves room for a busy CI.
        assert seconds < 10, f"{args}: {seconds:.1f} s"
    assert not (scans / "out").exists()
    assert (scans / "done" / "scan_0.nii.gz").read_bytes() == b"an earlier result"


def test_the_installed_script_refuses_an_unwritable_output_with_the_users_path(scans):
    result = subprocess.run(["cdseg", "predict", str(scans / "scans" / "scan_0.nii.gz"), "-o", "/proc/x.nii.gz",
                             *NO_MODEL], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "Error: /proc/x.nii.gz: cannot write in /proc (this file system does not accept new files)\n"


def test_a_folder_listing_names_what_it_skipped(scans, tmp_path):
    folder = scans / "scans"
    (folder / "notes.txt").write_text("not a scan")
    (folder / "sub").mkdir()
    (folder / ".hidden").write_text("ignored without a word")
    nib.save(nib.load(str(scans / "label.nii.gz")), str(folder / "scan_0_seg.nii.gz"))
    # The listing and its notes come before the model is resolved, so a missing model shows them too.
    result = CliRunner().invoke(cli, ["predict", "-i", str(folder), "-o", str(tmp_path / "out"), *NO_MODEL])
    skipped = [line for line in result.output.splitlines() if line.startswith("Skipped")]
    assert skipped == [
        f"Skipped {folder / 'notes.txt'}: not a NIfTI file",
        f"Skipped {folder / 'scan_0_seg.nii.gz'}: looks like a label map (only 2 distinct integer values: 0, 1), "
        "not a scan",
        f"Skipped {folder / 'sub'}: a folder (folders are not searched; give it as an input)",
    ]
    assert "Error: /nonexistent/model" in result.output and result.exit_code == 2
    quiet = CliRunner().invoke(cli, ["predict", "-q", "-i", str(folder), "-o", str(tmp_path / "out"), *NO_MODEL])
    assert "Skipped" not in quiet.output and quiet.exit_code == 2


def test_positional_and_dash_i_inputs_are_one_list(scans, tmp_path):
    scan = scans / "scans" / "scan_0.nii.gz"
    result = CliRunner().invoke(cli, ["predict", str(scan), "-i", str(scan), "-o", str(tmp_path / "out"), *NO_MODEL])
    assert result.exit_code == 2 and "case name 'scan_0' also used" in result.output


def test_help_shows_the_fields_spellings_and_defaults():
    result = CliRunner().invoke(cli, ["predict", "--help"])
    assert result.exit_code == 0
    text_of_help = " ".join(result.output.split())  # Click wraps help to the terminal
    for text in ("-i, --input", "--postprocess / --no-postprocess", "-q, --quiet", "-v, --verbose",
                 "[default: postprocess]", "[default: predictions]", "[default: 16;"):  # fmt: skip
        assert text in text_of_help, text
