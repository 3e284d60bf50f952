"""Pairing prediction and reference NIfTI folders, and reading optional dataset metadata.

Files are matched by case name (file name without `.nii.gz`/`.nii`). Every problem (a missing partner, an
unreadable file, a grid mismatch) is found before any metric is computed and reported as an `InputError`
naming the file.
"""

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_cdseg.data.nifti_io import NIFTI_SUFFIXES, case_name, check_same_grid, load_image, load_label
from keras_cdseg.errors import InputError
from keras_cdseg.evaluation.cases import CasePair

DEFAULT_LABELS = {"liver": 1}


@dataclasses.dataclass(frozen=True)
class CaseFiles:
    """A matched prediction/reference pair (and the image, if dataset metadata names it)."""

    case_id: str
    pred: Path
    ref: Path
    modality: str | None = None
    image: Path | None = None


def parse_labels_option(text):
    """`"liver=1,spleen=2"` -> `{"liver": 1, "spleen": 2}`; InputError naming `--labels` otherwise."""
    labels = {}
    for item in (part.strip() for part in str(text).split(",")):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise InputError("--labels", f"expected name=value pairs like liver=1,spleen=2, got {item!r}")
        if name.strip() in labels:
            raise InputError("--labels", f"class {name.strip()!r} given twice")
        labels[name.strip()] = int(value)
    return labels


def find_nifti_files(directory, role):
    """`{case_id: path}` of the NIfTI files directly inside `directory` (`role` names it in errors)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, f"{role} directory not found")
    files = {}
    for path in sorted(directory.iterdir()):
        if path.name.endswith(NIFTI_SUFFIXES) and not path.name.startswith("."):
            _check_nifti_entry(path, role)
            case_id = case_name(path)
            if case_id in files:
                raise InputError(path, f"two {role} files for case {case_id!r} ({files[case_id].name} and {path.name})")
            files[case_id] = path
    if not files:
        raise InputError(directory, f"no .nii.gz or .nii files in the {role} directory")
    return files


def _check_nifti_entry(path, role):
    """InputError naming `path` when an entry named like a NIfTI file cannot be one: a broken link, a folder,
    something that is not a regular file, or a file this process may not read."""
    if path.is_symlink() and not path.exists():
        raise InputError(path, f"broken symbolic link in the {role} directory (points to {path.readlink()})")
    if path.is_dir():
        raise InputError(path, f"is a folder, not a NIfTI file, in the {role} directory")
    if not path.is_file():
        raise InputError(path, f"is not a regular file (a NIfTI file was expected) in the {role} directory")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or type(e).__name__})") from None


def match_pairs(pred_dir, ref_dir, metadata=None):
    """Returns one `CaseFiles` per reference file, sorted by case id.

    Args:
        pred_dir, ref_dir: folders of predicted and reference label maps.
        metadata: dict from `read_dataset_metadata` or None; adds modality and image paths.

    Raises:
        InputError: a reference without prediction, or a prediction without reference (names the file).
    """
    preds = find_nifti_files(pred_dir, "prediction")
    refs = find_nifti_files(ref_dir, "reference")
    for case_id, ref in refs.items():
        if case_id not in preds:
            raise InputError(ref, f"no prediction named {case_id}.nii.gz or {case_id}.nii in {pred_dir}")
    for case_id, pred in preds.items():
        if case_id not in refs:
            raise InputError(pred, f"no reference named {case_id}.nii.gz or {case_id}.nii in {ref_dir}")
    metadata = metadata or {}
    modalities = metadata.get("modality_by_case", {})
    images = metadata.get("image_by_case", {})
    return [
        CaseFiles(case_id, preds[case_id], refs[case_id], modalities.get(case_id), images.get(case_id))
        for case_id in sorted(refs)
    ]


def check_headers(pairs, atol_mm=1e-3):
    """Compares shapes and affines from the headers only (no voxel data read); InputError on a mismatch."""
    for pair in pairs:
        ref_shape, ref_affine = _header_grid(pair.ref)
        pred_shape, pred_affine = _header_grid(pair.pred)
        if pred_shape != ref_shape:
            raise InputError(
                pair.pred, f"shape {pred_shape} differs from the reference shape {ref_shape} ({pair.ref.name})"
            )
        if not np.allclose(pred_affine, ref_affine, atol=atol_mm):
            worst = float(np.abs(pred_affine - ref_affine).max())
            raise InputError(
                pair.pred, f"affine differs from the reference {pair.ref.name} (max difference {worst:.4g})"
            )


def _header_grid(path):
    try:
        img = nib.load(str(path))
        shape = tuple(int(n) for n in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as e:  # nibabel raises many types for corrupt headers; all mean "unreadable".
        raise InputError(path, f"not a readable NIfTI file ({type(e).__name__}: {str(e).strip()[:120]})") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    return shape, affine


def read_dataset_metadata(ref_dir):
    """Labels, modality and image per case from a `dataset.json` in `ref_dir` or its parent, if there is one.

    Returns:
        None when there is no dataset.json; otherwise a dict with `source` (the json path), `labels`
        (name -> value), `modality_by_case` and `image_by_case` keyed by label-file case name.

    Raises:
        InputError: a dataset.json exists but is invalid (from `keras_cdseg.data.dataset.load_dataset`).
    """
    from keras_cdseg.data.dataset import DATASET_JSON, load_dataset

    ref_dir = Path(ref_dir).resolve()
    for root in (ref_dir, ref_dir.parent):
        if (root / DATASET_JSON).is_file():
            index = load_dataset(root)
            modality_by_case, image_by_case = {}, {}
            for case in index.cases:
                for key in {case.case_id, case_name(case.label) if case.label else case.case_id}:
                    modality_by_case[key] = case.modality
                    image_by_case[key] = case.image
            return {
                "source": str(root / DATASET_JSON),
                "labels": {k: v for k, v in index.labels.items() if v != 0},
                "modality_by_case": modality_by_case,
                "image_by_case": image_by_case,
            }
    return None


def iter_case_pairs(pairs, with_images=True):
    """Yields a `CasePair` per `CaseFiles`, loading one case at a time (spacing from the reference header).

    Raises:
        InputError: unreadable or non-integer label maps, or prediction and reference on different grids.
    """
    for files in pairs:
        ref = load_label(files.ref)
        pred = load_label(files.pred)
        check_same_grid(ref, pred)
        image = None
        if with_images and files.image is not None:
            loaded = load_image(files.image)
            image = loaded.data if loaded.shape == ref.shape else None
        yield CasePair(
            case_id=files.case_id,
            labels_gt=ref.data,
            labels_pred=pred.data,
            spacing_mm=ref.spacing_mm,
            modality=files.modality,
            image=image,
            affine=ref.affine,
        )
