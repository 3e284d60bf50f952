"""Smooth random shapes for the phantoms, evaluated on axis-aligned world grids.

Every shape is an implicit "normalised radius" field r(x, y, z): r < 1 inside, r = 1 on the surface. Fields
take the three 1D coordinate vectors of a grid already shaped for broadcasting (`x` as (n, 1, 1), `y` as
(1, m, 1), `z` as (1, 1, k), in mm), so anything that depends on fewer axes costs 1D or 2D work and only the
final combination is 3D. Random parts (warps, plane waves) are separable products of 1D cosines for the same
reason: a phantom at 512×512×100 is painted with a few dozen array operations per organ, never a Python loop
over voxels.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Warp:
    """A smooth random displacement: per component, a sum of separable cosine products.

    Component c is `sum_k a[c,k] * cos(f[c,k,0] x + p[c,k,0]) * cos(f[c,k,1] y + p[c,k,1]) * cos(f[c,k,2] z
    + p[c,k,2])`. The displacement is added to a shape's normalised coordinates, so amplitudes are fractions
    of the shape's radii (0.1 moves the surface by about a tenth of the radius).

    Args:
        amplitudes: np.ndarray (3, K). Amplitude of each term, in normalised units.
        frequencies_per_mm: np.ndarray (3, K, 3). Angular frequencies (rad/mm) along x, y, z.
        phases: np.ndarray (3, K, 3). Phases in radians.
    """

    amplitudes: np.ndarray
    frequencies_per_mm: np.ndarray
    phases: np.ndarray

    @property
    def max_shift(self):
        """Largest possible displacement of one component (normalised units): bounds the shape's growth."""
        return float(np.abs(self.amplitudes).sum(axis=1).max())

    def components(self, x, y, z):
        out = []
        for c in range(3):
            total = 0.0
            for k in range(self.amplitudes.shape[1]):
                f, p = self.frequencies_per_mm[c, k], self.phases[c, k]
                plane = (float(self.amplitudes[c, k]) * np.cos(float(f[0]) * x + float(p[0]))) * np.cos(
                    float(f[1]) * y + float(p[1])
                )
                total = total + plane * np.cos(float(f[2]) * z + float(p[2]))
            out.append(total)
        return out


def random_warp(rng, amplitude, wavelength_mm=(70.0, 200.0), num_terms=2):
    """A `Warp` whose terms have random wavelengths in `wavelength_mm` and total amplitude about `amplitude`."""
    wavelengths = rng.uniform(*wavelength_mm, size=(3, num_terms, 3))
    signs = rng.choice([-1.0, 1.0], size=(3, num_terms, 3))
    amplitudes = amplitude / math.sqrt(num_terms) * rng.uniform(0.6, 1.0, size=(3, num_terms))
    return Warp(
        amplitudes=amplitudes,
        frequencies_per_mm=signs * 2 * np.pi / wavelengths,
        phases=rng.uniform(0, 2 * np.pi, size=(3, num_terms, 3)),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Blob:
    """A superellipsoid, rotated about z (yaw) then about the rotated y axis (tilt), optionally warped.

    Args:
        center_mm: (float, float, float). Centre in anatomy coordinates (mm).
        radii_mm: (float, float, float). Semi-axes along the blob's own u, v, w axes.
        yaw_deg: float. Rotation of u from +x towards +y. Defaults to 0.
        tilt_deg: float. Rotation of w from +z towards +u (e.g. a kidney's upper pole leaning medially).
            Defaults to 0.
        exponent: float. 2 is an ellipsoid; larger values give boxier shapes. Defaults to 2.
        warp: Warp or None. Low-frequency displacement of the normalised coordinates. Defaults to None.
    """

    center_mm: tuple
    radii_mm: tuple
    yaw_deg: float = 0.0
    tilt_deg: float = 0.0
    exponent: float = 2.0
    warp: Warp | None = None

    def bounds_mm(self, margin=1.2):
        """(low, high) corners of a box outside which r > `margin` (default: beyond any smooth union's reach)."""
        # A warp moves normalised coordinates by up to max_shift per component (< 2 * max_shift in length).
        shift = 2.0 * self.warp.max_shift if self.warp is not None else 0.0
        reach = max(self.radii_mm) * (margin + shift) * (1.0 if self.exponent <= 2 else math.sqrt(3))
        center = np.asarray(self.center_mm, dtype=float)
        return center - reach, center + reach

    def radius_field(self, x, y, z, warp_components=None):
        """Normalised radius at broadcast coordinates; `warp_components` reuses a shared warp's values."""
        dx = x - float(self.center_mm[0])
        dy = y - float(self.center_mm[1])
        w = z - float(self.center_mm[2])
        if self.yaw_deg:
            c, s = math.cos(math.radians(self.yaw_deg)), math.sin(math.radians(self.yaw_deg))
            u, v = c * dx + s * dy, c * dy - s * dx
        else:
            u, v = dx, dy
        if self.tilt_deg:
            c, s = math.cos(math.radians(self.tilt_deg)), math.sin(math.radians(self.tilt_deg))
            u, w = c * u - s * w, c * w + s * u
        ra, rb, rc = (float(r) for r in self.radii_mm)
        u, v, w = u * (1.0 / ra), v * (1.0 / rb), w * (1.0 / rc)
        if self.warp is not None:
            du, dv, dw = warp_components if warp_components is not None else self.warp.components(x, y, z)
            u, v, w = u + du, v + dv, w + dw
        if self.exponent == 2.0:
            return np.sqrt(u * u + v * v + w * w)
        p = float(self.exponent)
        return (np.abs(u) ** p + np.abs(v) ** p + np.abs(w) ** p) ** (1.0 / p)


def smooth_union(fields, smoothness=0.1):
    """Smooth minimum of radius fields (polynomial smin): blobs merge without creases at their seams."""
    result = fields[0]
    for other in fields[1:]:
        h = np.clip(0.5 + 0.5 * (other - result) / smoothness, 0.0, 1.0)
        result = other + (result - other) * h - smoothness * h * (1.0 - h)
    return result


def union_bounds(blobs):
    lows, highs = zip(*(b.bounds_mm() for b in blobs))
    return np.min(lows, axis=0), np.max(highs, axis=0)


@dataclasses.dataclass(frozen=True, eq=False)
class WaveField:
    """A smooth random scalar field: a sum of plane waves `a_k cos(f_k · p + phase_k)`.

    Unlike `Warp`'s separable products its level sets have no preferred axes, which matters for vessel-like
    structures (zero sets of two such fields intersect in curves). `values_at` evaluates it at scattered
    points, `on_grid` on a broadcast grid.

    Args:
        amplitudes: np.ndarray (K,).
        frequencies_per_mm: np.ndarray (K, 3). Wave vectors in rad/mm.
        phases: np.ndarray (K,).
    """

    amplitudes: np.ndarray
    frequencies_per_mm: np.ndarray
    phases: np.ndarray

    def values_at(self, x, y, z):
        total = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z)), dtype=np.float32)
        for a, f, p in zip(self.amplitudes, self.frequencies_per_mm, self.phases):
            total += float(a) * np.cos(float(f[0]) * x + float(f[1]) * y + float(f[2]) * z + float(p))
        return total

    def on_grid(self, x, y, z):
        # cos(A + B + C) expanded so only 2D arrays meet transcendental functions; the 3D work is two
        # multiplications per wave.
        total = 0.0
        for a, f, p in zip(self.amplitudes, self.frequencies_per_mm, self.phases):
            ax, by, cz = float(f[0]) * x + float(p), float(f[1]) * y, float(f[2]) * z
            cos_ab = np.cos(ax) * np.cos(by) - np.sin(ax) * np.sin(by)
            sin_ab = np.sin(ax) * np.cos(by) + np.cos(ax) * np.sin(by)
            total = total + float(a) * (cos_ab * np.cos(cz) - sin_ab * np.sin(cz))
        return total


def random_wave_field(rng, wavelength_mm, num_waves=4, unit_gradient=False):
    """A `WaveField` with isotropic random directions and wavelengths uniform in `wavelength_mm`.

    With `unit_gradient`, each wave's amplitude is 1/|f| so the field changes by about 1 per mm near its zero
    set (|field| then approximates a distance in mm); otherwise the field has unit standard deviation.
    """
    directions = rng.normal(size=(num_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wave_numbers = 2 * np.pi / rng.uniform(*wavelength_mm, size=num_waves)
    if unit_gradient:
        amplitudes = 1.0 / wave_numbers * math.sqrt(2.0 / num_waves)
    else:
        amplitudes = np.full(num_waves, math.sqrt(2.0 / num_waves))
    return WaveField(
        amplitudes=amplitudes,
        frequencies_per_mm=directions * wave_numbers[:, None],
        phases=rng.uniform(0, 2 * np.pi, size=num_waves),
    )
