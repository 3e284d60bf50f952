"""Checks shared by every source format: the destination, case ids across sources, each written case."""

import dataclasses

import nibabel as nib
import numpy as np

from keras_cdseg.data import dataset, nifti_io
from keras_cdseg.errors import InputError

# Validation of a source whose labels are unknown: every value is declared, the label map's values are counted.
ANY_LABEL = {"background": 0, **{f"label_{v}": v for v in range(1, 256)}}


class DatasetProblems(InputError):
    """Some cases or sources failed; `problems` maps case id (or source folder) -> list of one-line problems."""

    def __init__(self, source, problems, num_cases):
        self.problems = problems
        num_problems = sum(len(v) for v in problems.values())
        if num_problems == 1:
            case_id, (problem,) = next(iter(problems.items()))
            super().__init__(case_id, f"{problem}; nothing written")
        else:
            case_id, first = next(iter(problems.items()))
            super().__init__(
                source, f"{num_problems} problems in {len(problems)} of {num_cases} cases (first: {case_id}: {first[0]}); nothing written"
            )


def check_destination(sources, dst, overwrite):
    """Raises unless `dst` may be written: never inside or over a source (missing sources are found by discovery)."""
    for src in sources:
        if dst == src or src in dst.parents:
            raise InputError(dst, f"destination lies inside the source folder {src}; sources are never modified")
    if dst.exists():
        if not overwrite:
            raise InputError(dst, "already exists; pass --overwrite to replace it")
        for src in sources:
            if dst in src.parents:
                raise InputError(dst, f"cannot overwrite a folder that contains the source {src}")
        if not (dst / dataset.DATASET_JSON).is_file():
            raise InputError(dst, "exists and is not a dataset directory (no dataset.json); refusing to replace it")


def case_id_clashes(cases):
    """Finds case ids that several sources share.

    Args:
        cases: (source index, SourceCase) of all sources, in order (ids are unique within one source).

    Returns:
        (the pairs to import: the first of each id; dict case id -> list of problems naming both files).
    """
    first, kept, problems = {}, [], {}
    for index, case in cases:
        if case.case_id in first:
            problems.setdefault(case.case_id, []).append(
                f"case id clash: {first[case.case_id].image_source} and {case.image_source} (rename one source's files)"
            )
        else:
            first[case.case_id] = case
            kept.append((index, case))
    return kept, problems


def check_written_case(case, labels, empty_labels, lut=None):
    """Validates one case as written (image and label map read once) and counts its label values.

    Args:
        case: dataset.Case, the files in the new dataset directory.
        labels: dict or None. The dataset's labels (None: unknown yet, every value is accepted).
        empty_labels: "warn", "error" or "ignore".
        lut: uint8[256] or None. A remapping still to apply to the written label map (copied as the source
            holds it): values the lookup table leaves alone keep the copied file as it is, so the common case
            of a renaming without renumbering costs no decoding and no gzip compression.

    Returns:
        A `dataset.CaseCheck` of the case as it ends up (label voxels counted after the remapping).
    """
    if lut is None or case.label is None:
        return dataset.validate_case(case, labels if labels is not None else ANY_LABEL, empty_labels=empty_labels)
    # Source values that the remapping drops are fine; what it keeps is declared by construction.
    check = dataset.validate_case(case, ANY_LABEL, empty_labels="ignore")
    if check.problems:
        return check
    label_voxels = {}
    for value, count in check.label_voxels.items():
        label_voxels[int(lut[value])] = label_voxels.get(int(lut[value]), 0) + count
    if any(int(lut[value]) != value for value in check.label_voxels):
        _remap_file(case.label, lut)
    problems, warnings = list(check.problems), list(check.warnings)
    if not set(label_voxels) - {0}:
        message = f"label {case.label.name}: label map is empty (background only)"
        if set(check.label_voxels) - {0}:
            message += f" after --labels: none of the source values {np.flatnonzero(lut).tolist()}"
        {"warn": warnings, "error": problems, "ignore": []}[empty_labels].append(message)
    return dataclasses.replace(check, problems=tuple(problems), warnings=tuple(warnings), label_voxels=dict(sorted(label_voxels.items())))


def _remap_file(path, lut):
    # The map was validated a moment ago (integers 0..255, 3D): decode it without repeating those checks.
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    data = data.reshape(data.shape[:3])
    volume = nifti_io.Volume(data=data, affine=np.asarray(img.affine, dtype=np.float64), header=img.header, path=path)
    nifti_io.save_like(lut[data.astype(np.uint8)], volume, path, dtype=np.uint8)
