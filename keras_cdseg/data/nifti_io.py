"""Reading and writing NIfTI volumes with validation that names the file and the problem.

Every reader returns a `Volume`; every writer goes through a temporary file and a rename, so a killed job
never leaves a half-written NIfTI behind. Inputs are only ever opened for reading.
"""

import dataclasses
import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_path

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclasses.dataclass(frozen=True, eq=False)
class Volume:
    """A 3D array with its voxel-to-world affine and the header it came with.

    Args:
        data: np.ndarray. 3D array in the file's voxel order (i, j, k).
        affine: np.ndarray. 4×4 voxel → world (RAS+ mm) matrix, as nibabel reports it.
        header: nibabel header or None. Kept so outputs can copy it.
        path: Path or None. Where the volume was read from (used in error messages).
    """

    data: np.ndarray
    affine: np.ndarray
    header: object = None
    path: Path | None = None

    @property
    def spacing_mm(self):
        """Voxel size along the three array axes, from the affine's column norms."""
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def shape(self):
        return self.data.shape

    @property
    def name(self):
        return case_name(self.path) if self.path is not None else "<array>"


def case_name(path):
    """`case_001` for `.../case_001.nii.gz` (or `.nii`)."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _load(path):
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "not a file")
    try:
        img = nib.load(str(path))
        # Reading the data here surfaces truncated or corrupt files now rather than mid-training.
        data = np.asarray(img.dataobj)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise InputError(path, f"truncated or corrupt compressed NIfTI ({e})") from None
    except nib.filebasedimages.ImageFileError as e:
        _raise_if_truncated_gzip(path)
        raise InputError(path, f"not a readable NIfTI file ({_first_line(e)})") from None
    except (OSError, ValueError) as e:
        raise InputError(path, f"cannot read NIfTI data ({_first_line(e)})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, f"expected a 3D volume, got {data.ndim}D with shape {data.shape}")
    if min(data.shape) < 1:
        raise InputError(path, f"empty volume with shape {data.shape}")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(path, "invalid (singular or non-finite) voxel-to-world affine")
    return Volume(data=data, affine=affine, header=img.header, path=path)


def _raise_if_truncated_gzip(path):
    # A .nii.gz cut inside its header fails nibabel's type sniffing; say what really happened.
    if not path.name.endswith(".gz"):
        return
    try:
        with gzip.open(path) as f:
            while f.read(1 << 20):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise InputError(path, f"truncated or corrupt compressed NIfTI ({e})") from None


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load_image(path):
    """Loads an intensity volume as float32; rejects NaN/Inf and constant images."""
    volume = _load(path)
    data = volume.data.astype(np.float32, copy=False)
    # Integers (most CT and MR on disk) are finite; only a float source can hold NaN/Inf.
    if not np.issubdtype(volume.data.dtype, np.integer) and not np.all(np.isfinite(data)):
        num_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(volume.path, f"image contains {num_bad} NaN/Inf voxels")
    if float(data.max()) == float(data.min()):
        raise InputError(volume.path, f"image is constant (every voxel = {float(data.min()):g})")
    return dataclasses.replace(volume, data=data)


def load_label(path, allowed_values=None):
    """Loads a label map as uint8; values must be non-negative integers (and in `allowed_values` if given)."""
    volume = _load(path)
    data = volume.data
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.all(np.equal(np.mod(data, 1), 0)):
            raise InputError(volume.path, "label map has non-integer values")
    # NIfTI arrays are Fortran-ordered; unique over the memory order avoids a 3x slower C-order copy.
    values = np.unique(data.ravel(order="K"))
    if values.size and (values.min() < 0 or values.max() > 255):
        raise InputError(volume.path, f"label values must be in 0..255, found {values.min()}..{values.max()}")
    if allowed_values is not None:
        undeclared = sorted(set(values.astype(int).tolist()) - set(int(v) for v in allowed_values))
        if undeclared:
            raise InputError(
                volume.path, f"label values {undeclared} are not declared in dataset labels {sorted(allowed_values)}"
            )
    return dataclasses.replace(volume, data=data.astype(np.uint8))


def check_same_grid(image, label, atol_mm=1e-3):
    """Raises if a label map is not on its image's voxel grid (shape and affine within `atol_mm`)."""
    if image.shape != label.shape:
        raise InputError(label.path, f"label shape {label.shape} differs from image shape {image.shape}")
    if not np.allclose(image.affine, label.affine, atol=atol_mm):
        worst = float(np.abs(image.affine - label.affine).max())
        raise InputError(label.path, f"label affine differs from the image affine (max difference {worst:.4g})")


def save_like(data, reference, path, dtype=None):
    """Writes `data` on `reference`'s grid (same affine and header, new dtype) atomically."""
    data = np.asarray(data)
    if data.shape != reference.shape:
        raise ValueError(f"data shape {data.shape} differs from reference shape {reference.shape}")
    dtype = np.dtype(dtype or data.dtype)
    header = reference.header.copy() if reference.header is not None else None
    img = nib.Nifti1Image(data.astype(dtype, copy=False), reference.affine, header=header)
    img.set_data_dtype(dtype)
    # Labels must not be rescaled by the reference's slope/intercept.
    img.header.set_slope_inter(1, 0)
    save_nifti(img, path)


def save_array(data, affine, path, dtype=None):
    """Writes a new NIfTI from an array and affine atomically."""
    data = np.asarray(data)
    dtype = np.dtype(dtype or data.dtype)
    img = nib.Nifti1Image(data.astype(dtype), np.asarray(affine, dtype=np.float64))
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    save_nifti(img, path)


def save_nifti(img, path):
    path = Path(path)
    if not path.name.lower().endswith(NIFTI_SUFFIXES):  # nibabel picks the format case-insensitively too
        raise InputError(path, "output file name must end in .nii.gz or .nii")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
