"""Finding and loading the scans given to `cdseg predict`: NIfTI files, folders of them, DICOM series folders.

Every input is checked up front (existence, type, header dimensions, duplicate case names) so a run with a
bad input fails before any prediction; voxel-level problems (NaN, constant images) surface when the case is
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


def discover_inputs(inputs):
    """Expands the command-line inputs into `InputCase`s, in the given order (folders sorted by name).

    A folder holding NIfTI files contributes each of them (not recursing); a folder without NIfTI files is
    read as one DICOM series (every regular, non-hidden file in it).

    Raises:
        InputError: a missing input, a file that is not NIfTI, an empty folder, an unreadable or non-3D
            NIfTI header, or two inputs with the same case name (their outputs would collide).
    """
    if not inputs:
        raise InputError("INPUT", "give at least one NIfTI file, folder of NIfTI files or DICOM series folder")
    cases = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "input not found")
        if path.is_file():
            if not path.name.endswith(NIFTI_SUFFIXES):
                raise InputError(path, "not a NIfTI file (.nii.gz or .nii); for DICOM give the series folder")
            cases.append(InputCase(case_name(path), "nifti", path))
            continue
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        niftis = [p for p in files if p.name.endswith(NIFTI_SUFFIXES)]
        if niftis:
            cases.extend(InputCase(case_name(p), "nifti", p) for p in niftis)
        elif files:
            cases.append(InputCase(path.resolve().name, "dicom", path, tuple(files)))
        else:
            raise InputError(path, "folder holds no NIfTI files and no DICOM files")
    seen = {}
    for case in cases:
        if case.case_id in seen:
            raise InputError(case.path, f"case name {case.case_id!r} also used by {seen[case.case_id]}; rename one")
        seen[case.case_id] = case.path
        if case.kind == "nifti":
            check_nifti_header(case.path)
    return cases


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
