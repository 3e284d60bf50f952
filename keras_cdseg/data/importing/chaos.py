"""The CHAOS challenge download (DICOM slices + PNG ground truth) as NIfTI image/label pairs.

Layout (the challenge's own; `Train_Sets/` and `Test_Sets/` folders above `CT/`/`MR/` are found too):
```
CT/<id>/DICOM_anon/*.dcm                 CT/<id>/Ground/*.png            liver only (any non-zero grey)
MR/<id>/T1DUAL/DICOM_anon/InPhase/*.dcm  MR/<id>/T1DUAL/Ground/*.png     shared by in- and out-phase
MR/<id>/T1DUAL/DICOM_anon/OutPhase/*.dcm
MR/<id>/T2SPIR/DICOM_anon/*.dcm          MR/<id>/T2SPIR/Ground/*.png
```
MR ground-truth grey values: liver 63 (55–70), right kidney 126 (110–135), left kidney 189 (175–200),
spleen 252 (240–255). The i-th PNG belongs to the i-th DICOM file, both in natural order of file names (as the
challenge's evaluation code pairs them); the pairs are then stacked by slice position. A scan without a
`Ground/` folder (the test set) becomes an unlabelled test case.
"""

import dataclasses
from pathlib import Path

import numpy as np

from keras_cdseg.data import nifti_io
from keras_cdseg.data.dicom_io import natural_sort_key, read_series
from keras_cdseg.data.importing.source_case import SourceCase
from keras_cdseg.errors import InputError

CHAOS_LABELS = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
# (lowest grey, highest grey, label value), inclusive, from the challenge's data description.
MR_GREY_RANGES = ((55, 70, 1), (110, 135, 2), (175, 200, 3), (240, 255, 4))
# sequence name -> (modality, DICOM folder below the patient folder, Ground folder below the patient folder)
SEQUENCES = {
    "ct": ("CT", "DICOM_anon", "Ground"),
    "t1in": ("MR", "T1DUAL/DICOM_anon/InPhase", "T1DUAL/Ground"),
    "t1out": ("MR", "T1DUAL/DICOM_anon/OutPhase", "T1DUAL/Ground"),
    "t2spir": ("MR", "T2SPIR/DICOM_anon", "T2SPIR/Ground"),
}
# In-phase rather than out-phase T1: fat and water add up, so the liver looks like the other T1 scans users
# bring; out-phase doubles the MR data of each patient without adding a new contrast family.
DEFAULT_SEQUENCES = ("ct", "t1in", "t2spir")


@dataclasses.dataclass(frozen=True)
class ChaosScan:
    """One DICOM series of the CHAOS layout (and its ground-truth folder, if any)."""

    case_id: str
    modality: str
    dicom_dir: Path
    ground_dir: Path | None


def looks_like_chaos(src):
    """True if `src` (or a folder up to two levels below) holds CHAOS `CT/` or `MR/` patient folders."""
    return bool(find_chaos_roots(src))


def find_chaos_roots(src):
    """Folders that directly contain `CT/` or `MR/`: `src` itself, else its children and grandchildren."""
    src = Path(src)
    if _is_root(src):
        return [src]
    roots = []
    for child in _subdirs(src):
        if _is_root(child):
            roots.append(child)
        else:
            roots.extend(grandchild for grandchild in _subdirs(child) if _is_root(grandchild))
    return roots


def _is_root(folder):
    return any((folder / name).is_dir() and _subdirs(folder / name) for name in ("CT", "MR"))


def _subdirs(folder):
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_sort_key)


def discover_chaos(src, sequences=DEFAULT_SEQUENCES):
    """Lists the scans to import.

    Args:
        src: str or Path. The CHAOS folder (or one above `Train_Sets/`, `Test_Sets/`).
        sequences: iterable of "ct", "t1in", "t1out", "t2spir".

    Returns:
        list[ChaosScan], case ids `ct_001`, `mr_002_t1in`, ... (patient ids zero-padded when numeric).

    Raises:
        InputError: no CHAOS folders, an unknown sequence name, or a patient without a requested sequence.
    """
    unknown = sorted(set(sequences) - set(SEQUENCES))
    if unknown or not sequences:
        raise InputError("--sequences", f"unknown CHAOS sequences {unknown}; choose from {sorted(SEQUENCES)}")
    roots = find_chaos_roots(src)
    if not roots:
        raise InputError(src, "no CHAOS CT/<id>/ or MR/<id>/ folders found")
    scans = []
    for root in roots:
        for sequence in (s for s in SEQUENCES if s in sequences):
            modality, dicom_rel, ground_rel = SEQUENCES[sequence]
            for patient_dir in _subdirs(root / modality):
                patient = patient_dir.name.zfill(3) if patient_dir.name.isdigit() else patient_dir.name
                dicom_dir = patient_dir / dicom_rel
                case_id = f"ct_{patient}" if sequence == "ct" else f"mr_{patient}_{sequence}"
                if not dicom_dir.is_dir():
                    raise InputError(patient_dir, f"{case_id}: folder {dicom_rel}/ not found (requested sequence '{sequence}')")
                ground_dir = patient_dir / ground_rel
                scans.append(ChaosScan(case_id, modality, dicom_dir, ground_dir if ground_dir.is_dir() else None))
    return scans


def discover_chaos_cases(src, sequences=DEFAULT_SEQUENCES, modality=None):
    """The scans of `discover_chaos` as `SourceCase`s (scans without ground truth become test cases).

    Raises:
        InputError: as `discover_chaos`, or a `modality` other than the scans' own (CHAOS knows each scan's).
    """
    scans = discover_chaos(src, sequences)
    contradicted = sorted({s.modality for s in scans} - {modality}) if modality is not None else []
    if contradicted:
        raise InputError(src, f"CHAOS scans of modality {'/'.join(contradicted)} selected by --sequences; --modality {modality} contradicts it")
    return [
        SourceCase(
            s.case_id, "training" if s.ground_dir else "test", s.modality, s.dicom_dir, s.ground_dir, _converter(s),
            remaps_while_writing=True,
        )
        for s in scans
    ]


def _converter(scan):
    def convert(image_out, label_out, lut):
        series, label, warnings = read_chaos_scan(scan)
        nifti_io.save_array(series.data, series.affine, image_out)
        if label is not None:
            nifti_io.save_array(lut[label] if lut is not None else label, series.affine, label_out, dtype=np.uint8)
        return warnings

    return convert


def read_chaos_scan(scan):
    """Reads one scan.

    Returns:
        (series, label, warnings): the `DicomSeries`; a uint8 (columns, rows, slices) map with
        `CHAOS_LABELS` values on the series grid, or None without ground truth; a list of warning strings.

    Raises:
        InputError: DICOM problems (mixed series, missing slices, ...), a PNG count different from the DICOM
            count, or a PNG whose size differs from the DICOM slices.
    """
    dicom_paths = _files(scan.dicom_dir, ".dcm")
    series = read_series(dicom_paths, source=scan.dicom_dir)
    if scan.ground_dir is None:
        return series, None, []
    png_paths = _files(scan.ground_dir, ".png")
    if len(png_paths) != len(dicom_paths):
        raise InputError(
            scan.ground_dir, f"{len(png_paths)} ground-truth PNGs for {len(dicom_paths)} DICOM slices in {scan.dicom_dir.name}/"
        )
    slices, num_off_range = [], 0
    for file_index in series.order:
        label_slice, num_bad = decode_ground_png(png_paths[file_index], scan.modality, (series.num_rows, series.num_columns))
        slices.append(label_slice.T)  # (rows, cols) -> (cols, rows), as the image
        num_off_range += num_bad
    warnings = []
    if num_off_range:
        warnings.append(f"{num_off_range} ground-truth pixels with grey values outside the CHAOS organ ranges set to background")
    return series, np.stack(slices, axis=-1), warnings


def decode_ground_png(path, modality, shape):
    """Grey PNG -> label values; returns (labels (rows, cols) uint8, number of non-zero pixels outside the ranges).

    CT: every non-zero pixel is liver. MR: grey ranges of `MR_GREY_RANGES`; other non-zero greys are background
    (counted, reported as a warning).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "RGB", "RGBA", "LA", "1"):
                raise InputError(path, f"unsupported PNG mode {image.mode} (expected 8-bit grey)")
            grey = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise InputError(path, f"not a readable PNG ({e})") from None
    if grey.shape != tuple(shape):
        raise InputError(path, f"PNG size {grey.shape} differs from the DICOM slice size (rows, columns) {tuple(shape)}")
    if modality == "CT":
        return (grey > 0).astype(np.uint8), 0
    labels = np.zeros(grey.shape, dtype=np.uint8)
    for lowest, highest, value in MR_GREY_RANGES:
        labels[(grey >= lowest) & (grey <= highest)] = value
    return labels, int(np.count_nonzero((grey > 0) & (labels == 0)))


def _files(folder, suffix):
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix and not p.name.startswith(".")),
        key=lambda p: natural_sort_key(p.name),
    )
