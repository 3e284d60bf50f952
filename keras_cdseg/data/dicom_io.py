"""Reading a folder of single-frame DICOM slices into one 3D volume with a NIfTI (RAS) affine.

Geometry follows DICOM PS3.3 C.7.6.2: pixel (row r, column c) of a slice lies at
`ImagePositionPatient + c · PixelSpacing[1] · X + r · PixelSpacing[0] · Y` in patient LPS millimetres, where
`X, Y = ImageOrientationPatient[:3], [3:]` (X runs along a row, i.e. with the column index). Our array is
`data[i, j, k]` with i = column, j = row, k = slice in increasing position along the normal `X × Y`, so its
affine columns are `X · col_spacing`, `Y · row_spacing` and the measured slice step; LPS becomes RAS by
negating the first two world axes. Slices are ordered by position, never by file name.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np

from keras_cdseg.errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# A gap this much larger or smaller than the median gap means a missing (or extra) slice.
GAP_RELATIVE_TOLERANCE = 0.1
ORIENTATION_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True, eq=False)
class DicomSeries:
    """A stacked DICOM series.

    Args:
        data: np.ndarray. (columns, rows, num_slices) after RescaleSlope/Intercept; int16 when slopes and
            intercepts are integers and the values fit (CT in HU), float32 otherwise.
        affine: np.ndarray. 4×4 voxel → RAS mm.
        order: tuple[int, ...]. `order[k]` is the index (in the `paths` given to `read_series`) of slice k,
            so callers can put per-file companions (e.g. ground-truth PNGs) into the same order.
        modality: str or None. The DICOM Modality tag ("CT", "MR").
        num_rows: int. Rows of each slice (DICOM `Rows`).
        num_columns: int. Columns of each slice (DICOM `Columns`).
        datasets: tuple of pydicom Datasets. The source headers in slice order (`datasets[k]` is slice k,
            i.e. `data[:, :, k]`), pixel data dropped: what a DICOM-SEG writer needs to reference each source
            instance. Empty for series built without files.
    """

    data: np.ndarray
    affine: np.ndarray
    order: tuple
    modality: str | None
    num_rows: int
    num_columns: int
    datasets: tuple = ()


def natural_sort_key(name):
    """Sort key that orders digit runs numerically: `img2` before `img10` (as the CHAOS evaluation code)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(name))]


def read_series(paths, source=None):
    """Reads single-frame DICOM files of one series and stacks them by slice position.

    Args:
        paths: sequence of paths, in any order.
        source: str or Path or None. Named in error messages (default: the folder of the first file).

    Returns:
        A `DicomSeries`.

    Raises:
        InputError: unreadable files, missing geometry tags, several series mixed in one folder (several
            SeriesInstanceUIDs, or differing orientation, size or pixel spacing), duplicate positions, missing
            slices (a gap deviating > 10 % from the median) or slices not on a line.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError(source or "<dicom>", "no DICOM files found")
    source = str(source or paths[0].parent)
    headers = [_read_header(p) for p in paths]
    _check_single_series(headers, source)
    x_dir, y_dir, spacing_row_mm, spacing_col_mm = _in_plane_geometry(headers[0])
    normal = np.cross(x_dir, y_dir)
    positions = np.array([_floats(h, "ImagePositionPatient", 3) for h in headers])
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    step = _slice_step(positions, normal, headers[0], source)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = x_dir * spacing_col_mm
    affine_lps[:3, 1] = y_dir * spacing_row_mm
    affine_lps[:3, 2] = step
    affine_lps[:3, 3] = positions[0]
    data = _stack_rescaled([headers[i] for i in order], [paths[i] for i in order])
    datasets = tuple(_without_pixels(headers[i]) for i in order)
    return DicomSeries(
        data=data,
        affine=LPS_TO_RAS @ affine_lps,
        order=tuple(int(i) for i in order),
        modality=getattr(headers[0], "Modality", None) or None,
        num_rows=int(headers[0].Rows),
        num_columns=int(headers[0].Columns),
        datasets=datasets,
    )


def _without_pixels(header):
    """The header with its pixel data removed (in place): references need the metadata only."""
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in header:
            delattr(header, keyword)
    return header


def _read_header(path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(str(path))
    except InvalidDicomError:
        # Some exporters omit the 128-byte preamble and file meta; accept those only if they parse into an image.
        header = _read_without_preamble(path)
        if header is None:
            raise InputError(path, "not a readable DICOM file (no 'DICM' file header, and not a headerless DICOM image)") from None
    except (EOFError, OSError, ValueError, TypeError) as e:
        raise InputError(path, f"not a readable DICOM file ({type(e).__name__}: {_first_line(e)})") from None
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
        if tag not in header:
            raise InputError(path, f"DICOM file has no {tag}; cannot place the slice in space")
    if int(getattr(header, "NumberOfFrames", 1) or 1) > 1:
        raise InputError(path, "multi-frame DICOM is not supported (expected one file per slice)")
    if int(getattr(header, "SamplesPerPixel", 1)) != 1:
        raise InputError(path, "colour DICOM is not supported (SamplesPerPixel != 1)")
    return header


def _read_without_preamble(path):
    import pydicom

    try:
        header = pydicom.dcmread(str(path), force=True)
    except Exception:  # noqa: BLE001 - any failure means "not DICOM" here
        return None
    if "PixelData" not in header or "ImagePositionPatient" not in header:
        return None
    if "TransferSyntaxUID" not in getattr(header, "file_meta", {}):
        # Without file meta the pixel decoder needs to be told the encoding the parser found.
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        implicit, little = header.original_encoding
        header.file_meta = FileMetaDataset()
        header.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return header


def _check_single_series(headers, source):
    uids = {str(getattr(h, "SeriesInstanceUID", "")) for h in headers}
    # Some anonymisers and consoles give every slice its own SeriesInstanceUID; only a folder grouped into
    # several multi-slice UIDs is unambiguously a mix. The geometry checks below catch the rest.
    if 1 < len(uids) < len(headers):
        raise InputError(source, f"mixed series: {len(headers)} files carry {len(uids)} different SeriesInstanceUIDs")
    reference = headers[0]
    for name, tolerance in (("ImageOrientationPatient", ORIENTATION_TOLERANCE), ("PixelSpacing", 1e-4)):
        expected = np.array(_floats(reference, name))
        for h in headers[1:]:
            value = np.array(_floats(h, name))
            if value.shape != expected.shape or not np.allclose(value, expected, atol=tolerance):
                raise InputError(
                    source,
                    f"mixed series: {name} differs between slices ({_fmt(value)} in {Path(h.filename).name}, "
                    f"{_fmt(expected)} in {Path(reference.filename).name})",
                )
    sizes = {(int(h.Rows), int(h.Columns)) for h in headers}
    if len(sizes) > 1:
        raise InputError(source, f"mixed series: slices have different sizes (rows, columns) {sorted(sizes)}")


def _in_plane_geometry(header):
    orientation = np.array(_floats(header, "ImageOrientationPatient", 6))
    x_dir, y_dir = orientation[:3], orientation[3:]
    norms = np.linalg.norm(x_dir), np.linalg.norm(y_dir)
    if min(norms) < 1e-3 or abs(float(x_dir @ y_dir)) > 1e-3 * norms[0] * norms[1]:
        raise InputError(header.filename, f"invalid ImageOrientationPatient {_fmt(orientation)}")
    spacing_row_mm, spacing_col_mm = _floats(header, "PixelSpacing", 2)
    if min(spacing_row_mm, spacing_col_mm) <= 0:
        raise InputError(header.filename, f"invalid PixelSpacing {[spacing_row_mm, spacing_col_mm]}")
    return x_dir / norms[0], y_dir / norms[1], spacing_row_mm, spacing_col_mm


def _slice_step(positions, normal, reference, source):
    """Mean slice-to-slice displacement (mm); checks that slices are evenly spaced on a line."""
    if len(positions) == 1:
        thickness = float(getattr(reference, "SpacingBetweenSlices", 0) or getattr(reference, "SliceThickness", 0) or 1.0)
        return normal * thickness
    gaps_mm = np.diff(positions @ normal)
    median_gap_mm = float(np.median(gaps_mm))
    if gaps_mm.min() < 1e-3:
        raise InputError(source, f"mixed series: {int((gaps_mm < 1e-3).sum())} slice positions occur twice")
    worst = int(np.argmax(np.abs(gaps_mm - median_gap_mm)))
    if abs(gaps_mm[worst] - median_gap_mm) > GAP_RELATIVE_TOLERANCE * median_gap_mm:
        raise InputError(
            source,
            f"missing slices: gap of {gaps_mm[worst]:.3g} mm after slice {worst} of {len(positions)} "
            f"(median gap {median_gap_mm:.3g} mm)",
        )
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    expected = positions[0] + np.outer(np.arange(len(positions)), step)
    off_line_mm = float(np.linalg.norm(positions - expected, axis=1).max())
    if off_line_mm > 0.1 * median_gap_mm:
        raise InputError(source, f"mixed series: slice positions are {off_line_mm:.3g} mm off a straight line")
    return step


def _stack_rescaled(headers, paths):
    """(columns, rows, slices) after RescaleSlope/Intercept: int16 when every slope and intercept is an
    integer and the values fit (CT in HU), float32 otherwise."""
    rescale = [
        (float(getattr(h, "RescaleSlope", 1) or 1), float(getattr(h, "RescaleIntercept", 0) or 0)) for h in headers
    ]
    integral = all(slope.is_integer() and intercept.is_integer() for slope, intercept in rescale)
    work_dtype = np.int32 if integral else np.float32
    data = np.empty((int(headers[0].Columns), int(headers[0].Rows), len(headers)), dtype=work_dtype)
    for k, (header, path, (slope, intercept)) in enumerate(zip(headers, paths, rescale)):
        pixels = _pixels(header, path).astype(work_dtype)
        data[:, :, k] = (pixels * work_dtype(slope) + work_dtype(intercept)).T
    if integral and data.min() >= np.iinfo(np.int16).min and data.max() <= np.iinfo(np.int16).max:
        return data.astype(np.int16)
    return data.astype(np.float32, copy=False)


def _pixels(header, path):
    # MONOCHROME1 (inverted grey scale) is a radiography convention, not seen in CT/MR series.
    if getattr(header, "PhotometricInterpretation", "MONOCHROME2") != "MONOCHROME2":
        raise InputError(path, f"unsupported PhotometricInterpretation {header.PhotometricInterpretation}")
    try:
        pixels = header.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for undecodable pixel data
        raise InputError(path, f"cannot decode pixel data ({type(e).__name__}: {_first_line(e)})") from None
    if pixels.shape != (int(header.Rows), int(header.Columns)):
        raise InputError(path, f"pixel data shape {pixels.shape} does not match Rows x Columns")
    return pixels


def _floats(header, name, count=None):
    try:
        values = [float(v) for v in header.get(name)]
    except (TypeError, ValueError):
        raise InputError(header.filename, f"DICOM tag {name} is not numeric") from None
    if count is not None and len(values) != count:
        raise InputError(header.filename, f"DICOM tag {name} has {len(values)} values, expected {count}")
    return values


def _fmt(values):
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
