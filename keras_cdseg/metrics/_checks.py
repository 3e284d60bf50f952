"""Input validation shared by the metric functions.

Masks arrive from user files and model outputs, so a wrong shape or a non-binary array must fail with a
message that says which argument is wrong, not with a numpy broadcasting error deep inside a metric.
"""

import numbers

import numpy as np

from keras_cdseg.errors import InputError


def check_mask(mask, name):
    """Returns `mask` as a bool array; accepts bool arrays and numeric arrays holding only 0 and 1.

    Raises:
        InputError: if `mask` is 0-dimensional, empty, or holds values other than 0 and 1.
    """
    mask = np.asarray(mask)
    if mask.ndim == 0 or mask.size == 0:
        raise InputError(name, f"expected a non-empty array, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask
    if not (np.issubdtype(mask.dtype, np.number)):
        raise InputError(name, f"expected a boolean or 0/1 array, got dtype {mask.dtype}")
    as_bool = mask != 0
    # Checked with one comparison pass rather than np.unique, which sorts the whole volume.
    if not np.array_equal(as_bool, mask == 1):
        raise InputError(name, "expected a boolean or 0/1 array, found values other than 0 and 1")
    return as_bool


def check_mask_pair(mask_gt, mask_pred):
    """Validates both masks and that their shapes match; returns them as bool arrays."""
    mask_gt = check_mask(mask_gt, "mask_gt")
    mask_pred = check_mask(mask_pred, "mask_pred")
    if mask_gt.shape != mask_pred.shape:
        raise InputError("mask_pred", f"shape {mask_pred.shape} differs from mask_gt shape {mask_gt.shape}")
    return mask_gt, mask_pred


def check_spacing(spacing_mm, ndim):
    """Returns `spacing_mm` as a tuple of `ndim` positive finite floats.

    Raises:
        InputError: if the length differs from `ndim` or a value is not a positive finite number.
    """
    try:
        values = tuple(spacing_mm)
    except TypeError:
        raise InputError("spacing_mm", f"expected a sequence of {ndim} numbers, got {spacing_mm!r}") from None
    if len(values) != ndim:
        raise InputError("spacing_mm", f"expected {ndim} values (one per mask axis), got {len(values)}: {values}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
            raise InputError("spacing_mm", f"every voxel size must be a positive finite number, got {values}")
    return tuple(float(v) for v in values)
