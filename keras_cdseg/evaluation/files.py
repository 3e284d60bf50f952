"""Pairing predictions with references (single files or folders), and reading optional dataset metadata.

Files are matched by case name (file name without `.nii.gz`/`.nii`); two single files are one case. A
reference folder may also hold the scans (as TotalSegmentator's `ct.nii.gz` beside `ct_organs.nii.gz`, or
nnU-Net's `case_0000.nii.gz` beside `case.nii.gz`): files that are scans, not label maps, are set aside (and
drawn under the overlays), and a label map named `<scan case>_<anything>` belongs to that scan's case. Every
problem (a missing partner, an unreadable file, a grid mismatch) is found before any metric is computed and
reported as an `InputError` naming the file.
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
    """`"liver=1,spleen=2"` -> `{"liver": 1, "spleen": 2}` (prediction values; see `label_mapping`)."""
    from keras_cdseg.evaluation.label_mapping import parse_label_pairs

    return {name: pred for name, (pred, _) in parse_label_pairs(text, "--labels").items()}


def find_nifti_files(path, role):
    """`{case_id: path}` of one NIfTI file, or of the NIfTI files directly inside a folder (`role` names it)."""
    directory = Path(path)
    if not directory.is_dir():
        if not directory.exists() and not directory.is_symlink():
            raise InputError(directory, f"{role} file or folder not found")
        if not directory.name.endswith(NIFTI_SUFFIXES):
            raise InputError(directory, f"is not a NIfTI file (.nii.gz or .nii) or a folder of them")
        _check_nifti_entry(directory, role)
        return {case_name(directory): directory}
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


def match_pairs(pred_path, ref_path, metadata=None, skipped=None):
    """Returns one `CaseFiles` per reference label map, sorted by case id.

    Args:
        pred_path, ref_path: a predicted / reference label map file, or a folder of them. Two files are one
            case (named after the prediction); one file against a folder is matched by case name.
        metadata: dict from `read_dataset_metadata` or None; adds modality and image paths.
        skipped: list or None. Receives the paths of scans found in the reference folder and set aside.

    Raises:
        InputError: a reference without prediction, or a prediction without reference (names the file).
    """
    pred_path, ref_path = Path(pred_path), Path(ref_path)
    preds = find_nifti_files(pred_path, "prediction")
    refs = find_nifti_files(ref_path, "reference")
    metadata = metadata or {}
    modalities = metadata.get("modality_by_case", {})
    images = dict(metadata.get("image_by_case", {}))
    if not pred_path.is_dir() and not ref_path.is_dir():
        (case_id, pred), (ref,) = next(iter(preds.items())), refs.values()
        return [CaseFiles(case_id, pred, ref, modalities.get(case_id), images.get(case_id))]
    if ref_path.is_dir():
        refs, scans = _set_scans_aside(refs)
        if skipped is not None:
            skipped.extend(scans.values())
        if not refs:
            raise InputError(ref_path, f"holds no label map, only {len(scans)} scan(s); give the folder of reference labels")
        refs = _attach_to_scans(refs, scans, preds)
        images = {**scans, **images}
    else:
        if ref_path.is_file() and len(preds) == 1 and next(iter(refs)) not in preds:
            refs = {next(iter(preds)): ref_path}  # one reference against a folder holding one prediction
    if not pred_path.is_dir():
        refs = {case_id: ref for case_id, ref in refs.items() if case_id in preds}
    if not ref_path.is_dir():
        preds = {case_id: pred for case_id, pred in preds.items() if case_id in refs}
    for case_id, ref in refs.items():
        if case_id not in preds:
            raise InputError(ref, f"no prediction named {case_id}.nii.gz or {case_id}.nii in {pred_path}")
    for case_id, pred in preds.items():
        if case_id not in refs:
            raise InputError(pred, f"no reference named {case_id}.nii.gz or {case_id}.nii in {ref_path}")
    return [
        CaseFiles(case_id, preds[case_id], refs[case_id], modalities.get(case_id), images.get(case_id))
        for case_id in sorted(refs)
    ]


def _set_scans_aside(files):
    """`(label maps, scans)` of `{case_id: path}`, told apart by their intensity levels (see `is_label_map`)."""
    labels, scans = {}, {}
    for case_id, path in files.items():
        (labels if is_label_map(path) else scans)[case_id] = path
    return labels, scans


def is_label_map(path):
    """True when a NIfTI file holds a label map rather than a scan (few distinct non-negative integers)."""
    from keras_cdseg.inference.quality.triage import count_intensity_levels, looks_like_label_map

    try:
        data = np.asanyarray(nib.load(str(path)).dataobj)
    except Exception as e:  # nibabel raises many types for corrupt files; all mean "unreadable".
        raise InputError(path, f"not a readable NIfTI file ({type(e).__name__}: {str(e).strip()[:120]})") from None
    return looks_like_label_map(*count_intensity_levels(data))


def _attach_to_scans(refs, scans, preds):
    """Renames a label map `<scan case>_<suffix>` to the scan's case when that case has a prediction."""
    out = {}
    for case_id, path in refs.items():
        owner = max((s for s in scans if case_id.startswith(f"{s}_") and s in preds), key=len, default=None)
        out[owner if case_id not in preds and owner is not None and owner not in refs else case_id] = path
    return out


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


def iter_case_pairs(pairs, with_images=True, mapping=None, coverage=None):
    """Yields a `CasePair` per `CaseFiles`, loading one case at a time (spacing from the reference header).

    Args:
        mapping: `label_mapping.LabelMapping` or None. Rewrites each reference into the prediction's values.
        coverage: `label_mapping.LabelCoverage` or None. Collects the values present but not evaluated.

    Raises:
        InputError: unreadable or non-integer label maps, or prediction and reference on different grids.
    """
    for files in pairs:
        ref = load_label(files.ref)
        pred = load_label(files.pred)
        check_same_grid(ref, pred)
        if coverage is not None:
            coverage.add(files.case_id, pred.data, ref.data)
        image = None
        if with_images and files.image is not None:
            loaded = load_image(files.image)
            image = loaded.data if loaded.shape == ref.shape else None
        yield CasePair(
            case_id=files.case_id,
            labels_gt=ref.data if mapping is None else mapping.reference_as_prediction(ref.data),
            labels_pred=pred.data,
            spacing_mm=ref.spacing_mm,
            modality=files.modality,
            image=image,
            affine=ref.affine,
        )
