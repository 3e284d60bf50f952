"""Automatic degradations of a labelled scan, for calibrating and testing the quality estimate.

Each degradation maps `(image Volume, label array)` to a degraded pair on a consistent grid; the label moves
with the image wherever the geometry changes (crop, wrong orientation), so the Dice of a prediction of the
degraded image against the degraded label measures what the model got right. Intensity changes are relative
to the image's own robust range (1st-99th percentile), so they mean the same on CT (HU) and MR.

    CALIBRATION   noise, blur, bias field, intensity inversion, crop, wrong orientation (used by `cdseg train`)
    HELD_OUT      other types and strengths (gamma, ghosting, low resolution, salt-and-pepper, saturation,
                  flip, stronger/weaker noise, blur and bias): only for testing the estimate
"""

import dataclasses

import numpy as np
from scipy import ndimage

from keras_cdseg.data.nifti_io import Volume


@dataclasses.dataclass(frozen=True)
class Degradation:
    """One corruption: `kind` (a function name below) and its `strength`."""

    kind: str
    strength: float = 1.0

    @property
    def name(self):
        return f"{self.kind}_{self.strength:g}"


# Mild strengths (noise 0.05, blur 0.8, bias 0.3, crop 0.75) show the calibration unusual inputs that are
# still segmented well, so a shifted input alone is not read as a failure.
CALIBRATION = (
    Degradation("noise", 0.05), Degradation("noise", 0.15), Degradation("noise", 0.4), Degradation("blur", 0.8),
    Degradation("blur", 1.5), Degradation("blur", 3.0), Degradation("bias_field", 0.3),
    Degradation("bias_field", 0.6), Degradation("inversion"), Degradation("crop", 0.75), Degradation("crop", 0.5),
    Degradation("orientation"),
)  # fmt: skip
HELD_OUT = (
    Degradation("gamma", 0.35), Degradation("gamma", 3.0), Degradation("ghosting", 0.5),
    Degradation("low_resolution", 3.0), Degradation("salt_pepper", 0.05), Degradation("saturation", 0.3),
    Degradation("flip"), Degradation("noise", 0.25), Degradation("noise", 0.8), Degradation("blur", 2.2),
    Degradation("bias_field", 1.2), Degradation("crop", 0.3),
)  # fmt: skip


def degrade(degradation, image, label, seed=0):
    """`(degraded image Volume, degraded label array)`; the input arrays are not modified."""
    function = _KINDS.get(degradation.kind)
    if function is None:
        raise ValueError(f"unknown degradation {degradation.kind!r}; choose from {', '.join(sorted(_KINDS))}")
    rng = np.random.default_rng(seed)
    data = np.asarray(image.data, np.float32)
    label = np.asarray(label)
    new_data, new_label, affine = function(data, label, image.affine, degradation.strength, rng)
    return Volume(new_data.astype(np.float32), affine, None, image.path), new_label


def robust_range(data):
    """`(1st percentile, 99th - 1st percentile)` of `data` (from a strided sample of at most ~200k voxels)."""
    sample = np.asarray(data).ravel()[:: max(1, np.asarray(data).size // 200_000)]
    low, high = np.percentile(sample, [1, 99])
    return float(low), float(max(high - low, 1e-6))


def gamma_intensity(volume, gamma):
    """`volume` with intensities `low + range * t**gamma`, t in [0, 1] over its own min..max."""
    data = np.asarray(volume.data, np.float32)
    low, high = float(data.min()), float(data.max())
    t = (data - low) / max(high - low, 1e-6)
    return Volume((low + (high - low) * t**gamma).astype(np.float32), volume.affine, None, volume.path)


def shift_volume(volume, shift_voxels):
    """`volume` shifted by `shift_voxels` along both in-plane array axes (linear interpolation, edges kept)."""
    data = np.asarray(volume.data, np.float32)
    shifted = ndimage.shift(data, (shift_voxels, shift_voxels, 0.0), order=1, mode="nearest")
    return Volume(shifted, volume.affine, None, volume.path)


def _noise(data, label, affine, strength, rng):
    _, scale = robust_range(data)
    return data + rng.normal(0.0, strength * scale, data.shape).astype(np.float32), label, affine


def _blur(data, label, affine, strength, rng):
    return ndimage.gaussian_filter(data, sigma=strength), label, affine


def _bias_field(data, label, affine, strength, rng):
    grids = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in data.shape], indexing="ij")
    coefficients = rng.uniform(-1, 1, size=(3,))
    field = np.exp(strength * sum(c * g for c, g in zip(coefficients, grids)))
    low, _ = robust_range(data)
    return low + (data - low) * field.astype(np.float32), label, affine


def _inversion(data, label, affine, strength, rng):
    return float(data.max()) + float(data.min()) - data, label, affine


def _crop(data, label, affine, strength, rng):
    # Keep the first `strength` of array axis 0 (cuts through the organ when it is off-centre).
    keep = max(1, int(round(data.shape[0] * strength)))
    return data[:keep].copy(), label[:keep].copy(), affine


def _orientation(data, label, affine, strength, rng):
    # The header claims the original orientation while the data are stored with axes 1 and 2 swapped.
    return np.ascontiguousarray(np.swapaxes(data, 1, 2)), np.ascontiguousarray(np.swapaxes(label, 1, 2)), affine


def _flip(data, label, affine, strength, rng):
    return np.ascontiguousarray(data[:, :, ::-1]), np.ascontiguousarray(label[:, :, ::-1]), affine


def _gamma(data, label, affine, strength, rng):
    return gamma_intensity(Volume(data, affine), strength).data, label, affine


def _ghosting(data, label, affine, strength, rng):
    ghost = np.roll(data, data.shape[1] // 4, axis=1)
    return (1 - strength / 2) * data + (strength / 2) * ghost, label, affine


def _low_resolution(data, label, affine, strength, rng):
    factor = (1 / strength, 1 / strength, 1.0)
    small = ndimage.zoom(data, factor, order=1)
    back = ndimage.zoom(small, np.asarray(data.shape) / np.asarray(small.shape), order=0)
    return back[: data.shape[0], : data.shape[1], : data.shape[2]], label, affine


def _salt_pepper(data, label, affine, strength, rng):
    out = data.copy()
    hit = rng.random(data.shape)
    out[hit < strength / 2] = data.min()
    out[hit > 1 - strength / 2] = data.max()
    return out, label, affine


def _saturation(data, label, affine, strength, rng):
    low, scale = robust_range(data)
    centre = float(np.median(data))
    return np.clip(data, centre - strength * scale / 2, centre + strength * scale / 2), label, affine


_KINDS = {
    "noise": _noise, "blur": _blur, "bias_field": _bias_field, "inversion": _inversion, "crop": _crop,
    "orientation": _orientation, "flip": _flip, "gamma": _gamma, "ghosting": _ghosting,
    "low_resolution": _low_resolution, "salt_pepper": _salt_pepper, "saturation": _saturation,
}  # fmt: skip
