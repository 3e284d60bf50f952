"""Finding and loading the scans given to `cdseg predict`: NIfTI files, folders of them, DICOM series folders.

Every input is checked up front (existence, type, header dimensions, label maps given as scans, duplicate
case names) so a run with a bad input fails before the model is even loaded; files of a folder that are not
scans are skipped with a reason. Voxel-level problems (NaN, constant images) surface when the case is
loaded. Inputs are only ever opened for reading.
"""

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_cdseg.data.nifti_io import NIFTI_SUFFIXES, Volume, case_name, load_image
from keras_cdseg.errors import InputError


@dataclasses.dataclass(frozen=True)
class InputCase:
    """One scan to segment.

    Args:
        case_id: str. Output base name: the NIfTI name without suffix, or the DICOM folder's name.
        kind: str. "nifti" or "dicom".
        path: Path. The NIfTI file or the DICOM series folder.
        files: tuple of Path. The DICOM files of the series (empty for NIfTI).
    """

    case_id: str
    kind: str
    path: Path
    files: tuple = ()


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file of an input folder that is not segmented, and why (printed by `cdseg predict`)."""

    path: Path
    reason: str


# Files a DICOM series folder often holds beside its slices; anything else without the 'DICM' header is still
# tried as a headerless DICOM slice (some exporters omit the preamble).
_NOT_DICOM_SUFFIXES = (".txt", ".json", ".md", ".csv", ".xml", ".html", ".pdf", ".png", ".jpg", ".jpeg", ".bmp",
                       ".gif", ".tif", ".tiff", ".zip", ".gz", ".tar", ".npy", ".npz", ".mha", ".mhd", ".nrrd",
                       ".py", ".sh", ".log", ".ini", ".yaml", ".yml")  # fmt: skip


def discover_inputs(inputs):
    """Expands the command-line inputs into `InputCase`s (see `list_inputs`, which also says what was skipped)."""
    return list_inputs(inputs)[0]


def list_inputs(inputs):
    """`(cases, skipped)`: the command-line inputs as `InputCase`s, in the given order (folders sorted by name),
    and the `SkippedFile`s of their folders.

    A folder holding NIfTI files contributes each of them that is a scan (not recursing); a folder without
    NIfTI files is read as one DICOM series (its files with a DICOM header, or without a suffix that names
    another format). Hidden files are ignored; subfolders, other files and label maps are skipped with a reason.

    Raises:
        InputError: a missing input, a file that is not NIfTI, a NIfTI file that looks like a label map, a folder
            with nothing to segment, an unreadable or non-3D NIfTI header, or two inputs with the same case name
            (their outputs would collide).
    """
    if not inputs:
        raise InputError("INPUT", "give at least one NIfTI file, folder of NIfTI files or DICOM series folder")
    cases, skipped = [], []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "input not found")
        if path.is_file():
            if not path.name.endswith(NIFTI_SUFFIXES):
                raise InputError(path, "not a NIfTI file (.nii.gz or .nii); for DICOM give the series folder")
            check_nifti_header(path)
            label_values = label_map_values(path)
            if label_values is not None:
                raise InputError(path, f"{_describe_label_map(label_values)}, not a scan; give the image it labels")
            cases.append(InputCase(case_name(path), "nifti", path))
            continue
        folder_cases, folder_skipped = _list_folder(path)
        skipped.extend(folder_skipped)
        if not folder_cases:
            raise InputError(path, "nothing to segment: " + _describe_empty_folder(folder_skipped))
        cases.extend(folder_cases)
    seen = {}
    for case in cases:
        if case.case_id in seen:
            raise InputError(case.path, f"case name {case.case_id!r} also used by {seen[case.case_id]}; rename one")
        seen[case.case_id] = case.path
    return cases, skipped


def _list_folder(folder):
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    skipped = [SkippedFile(p, "a folder (folders are not searched; give it as an input)") for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    niftis = [p for p in files if p.name.endswith(NIFTI_SUFFIXES)]
    if niftis:
        skipped.extend(SkippedFile(p, "not a NIfTI file") for p in files if p not in niftis)
        cases = []
        for path in niftis:
            check_nifti_header(path)
            label_values = label_map_values(path)
            if label_values is None:
                cases.append(InputCase(case_name(path), "nifti", path))
            else:
                skipped.append(SkippedFile(path, f"{_describe_label_map(label_values)}, not a scan"))
        return cases, sorted(skipped, key=lambda s: s.path.name)
    dicom = [p for p in files if _has_dicom_header(p) or not p.name.lower().endswith(_NOT_DICOM_SUFFIXES)]
    skipped.extend(SkippedFile(p, "neither NIfTI nor DICOM") for p in files if p not in dicom)
    cases = [InputCase(folder.resolve().name, "dicom", folder, tuple(dicom))] if dicom else []
    return cases, sorted(skipped, key=lambda s: s.path.name)


def _describe_empty_folder(skipped):
    if not skipped:
        return "the folder holds no NIfTI files and no DICOM files"
    shown = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f"no NIfTI scan or DICOM series in it (skipped {shown}{more})"


def _has_dicom_header(path):
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def label_map_values(path):
    """The distinct values of a NIfTI file that looks like a label map, else None (it is a scan).

    Decided on the first sixteenth of the slices when they already show a scan's many intensity levels (cheap:
    only that part of a .nii.gz is decompressed), else on the whole volume; the threshold is the quality
    verdict's (`keras_cdseg.inference.quality.triage.looks_like_label_map`).
    """
    from keras_cdseg.inference.quality.triage import count_intensity_levels, looks_like_label_map

    proxy = nib.load(str(path)).dataobj
    num_slices = int(proxy.shape[2])
    try:
        head = np.asanyarray(proxy[:, :, : max(1, num_slices // 16)])
        if not looks_like_label_map(*count_intensity_levels(head)):
            return None
        data = np.asanyarray(proxy)
    except Exception as e:  # nibabel raises many types for truncated or corrupt data; all mean "unreadable".
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputError(path, f"not a readable NIfTI file ({first_line})") from None
    if not looks_like_label_map(*count_intensity_levels(data)):
        return None
    return [v.item() for v in np.unique(data)]


def _describe_label_map(values):
    shown = ", ".join(f"{v:g}" for v in values[:8]) + (", ..." if len(values) > 8 else "")
    return f"looks like a label map (only {len(values)} distinct integer values: {shown})"


def check_dicom_seg_inputs(cases):
    """InputError naming the first NIfTI case: a DICOM-SEG needs DICOM source instances to reference."""
    for case in cases:
        if case.kind != "dicom":
            raise InputError(case.path, "--dicom-seg needs a DICOM series folder as input; this input is NIfTI")


def check_nifti_header(path):
    """Reads only the header: InputError unless it is a readable NIfTI of a 3D volume (4D with one frame is 3D)."""
    try:
        shape = tuple(int(n) for n in nib.load(str(path)).shape)
    except Exception as e:  # nibabel raises many types for corrupt headers; all mean "unreadable".
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputError(path, f"not a readable NIfTI file ({first_line})") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(path, f"expected a 3D volume, got {len(shape)}D with shape {shape}")


def load_input(case):
    """Loads an `InputCase` as a float32 `Volume` (DICOM: rescaled values, RAS affine, no header)."""
    return load_input_with_series(case)[0]


def load_input_with_series(case):
    """`(Volume, DicomSeries or None)`: `load_input` plus, for DICOM, the series with its source datasets
    in slice order (`series.datasets[k]` is the volume's slice k), e.g. to write a DICOM-SEG referencing them."""
    if case.kind == "nifti":
        return load_image(case.path), None
    from keras_cdseg.data.dicom_io import read_series

    series = read_series(case.files, source=case.path)
    data = np.asarray(series.data, dtype=np.float32)
    if data.ndim != 3 or min(data.shape) < 1:
        raise InputError(case.path, f"expected a 3D series, got shape {data.shape}")
    if float(data.max()) == float(data.min()):
        raise InputError(case.path, f"series is constant (every voxel = {float(data.min()):g})")
    volume = Volume(data=data, affine=np.asarray(series.affine, dtype=np.float64), header=None, path=case.path)
    return volume, series
