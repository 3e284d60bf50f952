"""Where `cdseg predict` writes, checked before any model is loaded: output names, a writable folder, outputs
that exist already (refused without `overwrite`), a statistics.json that is not ours.

Needs no TensorFlow and no image library, so these refusals come in well under a second.
"""

import errno
import os
import tempfile
from pathlib import Path

from keras_cdseg.config import load_json
from keras_cdseg.errors import InputError

STATISTICS_JSON = "statistics.json"
STATISTICS_FORMAT = "keras_cdseg.predict/1"
NIFTI_OUTPUT_SUFFIXES = (".nii.gz", ".nii")


def is_file_output(out):
    """True when `out` names a NIfTI file (ends in .nii or .nii.gz), False when it names a folder."""
    return Path(out).name.lower().endswith(NIFTI_OUTPUT_SUFFIXES)


def output_stem(out):
    """`seg` for `.../seg.nii.gz` or `.../seg.nii`."""
    name = Path(out).name
    return name[: -len(next(s for s in NIFTI_OUTPUT_SUFFIXES if name.lower().endswith(s)))]


def check_output(cases, out):
    """`(folder, labels file name or None, statistics file name)` for writing `cases` to `out`.

    Raises:
        InputError: `out` names a file but there are several cases, or it names a folder that is a file
            (or a file name that is a folder).
    """
    out = Path(out)
    if is_file_output(out):
        if out.is_dir():
            raise InputError(out, "is a folder, but a name ending in .nii/.nii.gz asks for one output file; "
                                  "remove the folder or give another -o")  # fmt: skip
        if len(cases) != 1:
            raise InputError(out, f"names one output file but the inputs hold {len(cases)} cases; give a folder as -o")
        out_dir, labels_name, statistics_name = out.parent, out.name, f"{output_stem(out)}.json"
    else:
        out_dir, labels_name, statistics_name = out, None, STATISTICS_JSON
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output path exists and is not a folder")
    check_writable(out_dir, out)
    return out_dir, labels_name, statistics_name


def check_writable(folder, shown):
    """InputError naming `shown` (the user's -o) unless files can be created in `folder` or, if it does not
    exist yet, in its nearest existing parent (where it will be created).

    Tried by creating and removing a hidden file: permission bits do not tell (root may write anywhere, yet
    not in /proc; a read-only mount, a full disk).
    """
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise InputError(shown, f"cannot create a folder inside {existing}: it is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cdseg-write-check-", dir=existing)
    except OSError as e:
        raise InputError(shown, f"cannot write in {existing} ({_write_failure(e)})") from None
    os.close(fd)
    os.remove(probe)


def _write_failure(error):
    reasons = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
               errno.EDQUOT: "disk quota exceeded",
               # /proc, /sys: the folder exists, yet creating a file "finds no such file"
               errno.ENOENT: "this file system does not accept new files"}  # fmt: skip
    return reasons.get(error.errno, error.strerror or type(error).__name__)


def check_outputs_free(cases, out, probabilities=False, preview=False, dicom_seg=False, overwrite=False):
    """Everything about the outputs that needs no model, so `cdseg predict` refuses before loading one.

    Returns:
        `(out_dir, labels_name, statistics_name, planned)`: `check_output`'s answer plus each case's
        `output_paths` (case id -> {role: path}).

    Raises:
        InputError: see `check_output`; an existing output without `overwrite`; a statistics.json in the
            folder that `cdseg predict` did not write.
    """
    out_dir, labels_name, statistics_name = check_output(cases, out)
    planned = {case.case_id: output_paths(case.case_id, out_dir, probabilities, preview, labels_name, dicom_seg)
               for case in cases}  # fmt: skip
    # A folder's statistics.json gathers the cases of every run into it; a single file's statistics are its own.
    outputs = [path for paths in planned.values() for path in paths.values()]
    if labels_name is not None:
        outputs.append(out_dir / statistics_name)
    if not overwrite:
        for path in outputs:
            if path.exists():
                raise InputError(path, "output exists; pass --overwrite to replace it")
    if labels_name is None:
        read_statistics(out_dir / statistics_name)
    return out_dir, labels_name, statistics_name, planned


def output_paths(case_id, out_dir, probabilities=False, preview=False, labels_name=None, dicom_seg=False):
    """`{"labels": OUT/<case>.nii.gz, ["probabilities": ..., "preview": ..., "dicom_seg": ...]}` for one case.

    `labels_name` (e.g. "seg.nii.gz") replaces `<case>.nii.gz`; the other files then take its stem.
    """
    out_dir = Path(out_dir)
    stem = case_id if labels_name is None else output_stem(labels_name)
    paths = {"labels": out_dir / (labels_name or f"{case_id}.nii.gz")}
    if probabilities:
        paths["probabilities"] = out_dir / f"{stem}_probabilities.nii.gz"
    if preview:
        paths["preview"] = out_dir / f"{stem}_preview.png"
    if dicom_seg:
        paths["dicom_seg"] = out_dir / f"{stem}.seg.dcm"
    return paths


def read_statistics(path):
    """The statistics.json of earlier runs into the folder ({} if none); InputError if it is not ours."""
    if not path.exists():
        return {}
    record = load_json(path)
    if record.get("format") != STATISTICS_FORMAT or not isinstance(record.get("cases"), dict):
        raise InputError(path, "exists but is not a cdseg predict statistics file; choose another output folder")
    return record
