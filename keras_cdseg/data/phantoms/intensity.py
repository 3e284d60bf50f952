"""CT and MR intensity models: tissue map -> stored image.

CT is in Hounsfield units of a portal-venous scan (enhanced vessels, kidneys and spleen; liver 54–64 HU
with brighter vessels), with smooth tissue texture, white Gaussian noise and a mild in-plane blur
(reconstruction kernel), stored as int16 HU.

MR imitates a T1-weighted gradient echo (CHAOS "T1DUAL" in-phase or out-of-phase): fat bright, liver
brighter than spleen, vessels, fluid, cortical bone and air dark; an arbitrary per-case intensity scale, a
smooth multiplicative bias field (coil sensitivity), India-ink cancellation at fat/water boundaries in
out-of-phase cases, and Rician noise (magnitude of a complex signal with Gaussian noise), stored as int16.

Every random choice is drawn from the generator passed in, in a fixed order, so a case is reproducible.
"""

import numpy as np
from scipy import ndimage

from keras_cdseg.data.phantoms.anatomy import NUM_TISSUES, TISSUE

# Per tissue: (low, high) of a uniform draw, or a callable of the values drawn so far (dependencies such as
# "spleen close to liver" or "medulla darker than cortex"). Order matters: dependencies come later.
_CT_HU = {
    "air": (-1000, -1000), "fat": (-115, -85), "visceral_fat": lambda v, u: v["fat"] + u(-5, 5),
    "muscle": (40, 60), "lung": (-880, -800), "heart": (110, 150), "liver": (54, 64),
    "liver_vessel": (150, 190), "liver_lesion": (10, 40), "gallbladder": (0, 20),
    "spleen": lambda v, u: v["liver"] + u(-6, 12), "kidney_cortex": (170, 230),
    "kidney_medulla": lambda v, u: v["kidney_cortex"] - u(5, 25), "bone_cortex": (750, 1000),
    "bone_marrow": (380, 480), "disc": (70, 100), "csf": (0, 15), "aorta": (150, 200), "ivc": (110, 150),
    "stomach_wall": (40, 70), "gi_fluid": (0, 20), "gi_air": (-1000, -950), "bowel": (25, 50), "table": (50, 300),
}  # fmt: skip
_CT_TEXTURE_HU = {"fat": 8, "visceral_fat": 8, "muscle": 5, "lung": 40, "liver": 5, "spleen": 5, "kidney_cortex": 8,
                  "kidney_medulla": 8, "bone_marrow": 40, "bowel": 15}  # fmt: skip
# T1 signal relative to subcutaneous fat (about 1).
_MR_SIGNAL = {
    "air": (0, 0), "fat": (0.85, 1.0), "visceral_fat": lambda v, u: v["fat"] * u(0.95, 1.0),
    "muscle": (0.25, 0.35), "lung": (0.02, 0.05), "heart": (0.12, 0.3), "liver": (0.5, 0.65),
    "liver_vessel": lambda v, u: v["liver"] * u(0.25, 0.5), "liver_lesion": lambda v, u: v["liver"] * u(0.45, 0.7),
    "gallbladder": lambda v, u: u(0.6, 0.8) if u(0, 1) < 0.15 else u(0.05, 0.15),
    "spleen": lambda v, u: v["liver"] * u(0.58, 0.75), "kidney_cortex": (0.38, 0.5),
    "kidney_medulla": lambda v, u: v["kidney_cortex"] * u(0.6, 0.8), "bone_cortex": (0.02, 0.06),
    "bone_marrow": (0.55, 0.8), "disc": (0.2, 0.3), "csf": (0.05, 0.12), "aorta": (0.05, 0.35),
    "ivc": (0.05, 0.35), "stomach_wall": (0.3, 0.4), "gi_fluid": (0.05, 0.15), "gi_air": (0, 0),
    "bowel": (0.25, 0.45), "table": (0, 0),
}  # fmt: skip
_MR_TEXTURE = {"fat": 0.03, "visceral_fat": 0.03, "muscle": 0.04, "lung": 0.3, "liver": 0.04, "spleen": 0.04,
               "kidney_cortex": 0.04, "kidney_medulla": 0.04, "bone_marrow": 0.06, "bowel": 0.1}  # fmt: skip
_FATTY = ("fat", "visceral_fat", "bone_marrow")
REPORTED_TISSUES = ("fat", "muscle", "liver", "liver_vessel", "spleen", "kidney_cortex", "bone_cortex", "aorta")


def _draw_table(rng, spec):
    u = rng.uniform
    values = {}
    for name, rule in spec.items():
        values[name] = float(rule(values, u) if callable(rule) else u(*rule))
    return values


def _as_lookup(values, default=0.0):
    table = np.full(NUM_TISSUES, default, dtype=np.float32)
    for name, value in values.items():
        table[TISSUE[name]] = value
    return table


def _texture(rng, x, y, z, wavelength_mm=(8.0, 40.0), num_terms=4):
    """Unit-amplitude smooth random field: separable cosine products, cheap on a broadcast grid."""
    total = 0.0
    for _ in range(num_terms):
        f = [float(v) for v in 2 * np.pi / rng.uniform(*wavelength_mm, size=3)]
        p = [float(v) for v in rng.uniform(0, 2 * np.pi, size=3)]
        total = total + (np.cos(f[0] * x + p[0]) * np.cos(f[1] * y + p[1])) * np.cos(f[2] * z + p[2])
    return (total * np.float32(2.0 / np.sqrt(num_terms))).astype(np.float32)


def _blur_noise_gain(sigma_voxels):
    """Standard deviation of white unit noise after `gaussian_filter(sigma_voxels)`."""
    delta = np.zeros((15, 15, 15), dtype=np.float64)
    delta[7, 7, 7] = 1.0
    return float(np.sqrt((ndimage.gaussian_filter(delta, sigma_voxels, truncate=3.0) ** 2).sum()))


def _coords(axes_mm):
    x, y, z = (np.asarray(a, dtype=np.float32) for a in axes_mm)
    return x[:, None, None], y[None, :, None], z[None, None, :]


def render_ct(tissue, axes_mm, rng, blur_voxels=(0.5, 0.5, 0.0)):
    """CT image (int16 HU) of a tissue map.

    Args:
        tissue: uint8 tissue map (canonical orientation).
        axes_mm: the three 1D anatomy-coordinate vectors of the grid (for the texture).
        rng: np.random.Generator.
        blur_voxels: Gaussian blur sigma in voxels per axis (reconstruction kernel / partial volume).

    Returns:
        (np.ndarray int16, dict of the drawn parameters for synth.json). Values are clipped to
        [-1024, 3071], the range of 12-bit CT.
    """
    hu = _draw_table(rng, _CT_HU)
    oral_contrast = bool(rng.uniform() < 0.25)
    if oral_contrast:  # positive oral contrast makes bowel and stomach contents bright
        hu["gi_fluid"] = float(rng.uniform(200, 350))
    noise_sigma_hu = float(rng.uniform(8, 18))
    x, y, z = _coords(axes_mm)
    image = np.take(_as_lookup(hu), tissue)
    image += np.take(_as_lookup(_CT_TEXTURE_HU, default=3.0), tissue) * _texture(rng, x, y, z)
    # Noise is added before the blur and pre-scaled, so the image's final noise std is `noise_sigma_hu`
    # and, as in real CT, spatially correlated.
    gain = _blur_noise_gain(blur_voxels)
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sigma_hu / gain)
    image = ndimage.gaussian_filter(image, blur_voxels, truncate=3.0)
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    info = {
        "hu": {name: round(hu[name], 1) for name in REPORTED_TISSUES},
        "noise_sigma_hu": round(noise_sigma_hu, 2),
        "oral_contrast": oral_contrast,
    }
    return image, info


def render_mr(tissue, axes_mm, rng, blur_voxels=(0.5, 0.5, 0.3)):
    """T1-weighted MR image (int16, arbitrary units) of a tissue map.

    Args:
        tissue: uint8 tissue map (canonical orientation).
        axes_mm: the three 1D anatomy-coordinate vectors of the grid (texture and bias field).
        rng: np.random.Generator.
        blur_voxels: Gaussian blur sigma in voxels per axis.

    Returns:
        (np.ndarray int16, dict of the drawn parameters). Values are clipped to [0, 32767].
    """
    signal = _draw_table(rng, _MR_SIGNAL)
    out_of_phase = bool(rng.uniform() < 0.5)
    if out_of_phase:  # fat-water cancellation lowers slightly steatotic liver in opposed phase
        signal["liver"] *= float(rng.uniform(0.9, 1.0))
    scale = float(np.exp(rng.uniform(np.log(150.0), np.log(2500.0))))
    noise_fraction = float(rng.uniform(0.01, 0.035))
    bias_coefficients = {
        "x": rng.normal(0, 0.12), "y": rng.normal(0, 0.2), "z": rng.normal(0, 0.2), "xx": rng.normal(0, 0.15),
        "yy": rng.uniform(0.0, 0.6), "zz": rng.normal(0, 0.2), "xy": rng.normal(0, 0.1),
    }  # fmt: skip
    x, y, z = _coords(axes_mm)
    image = np.take(_as_lookup(signal), tissue)
    image *= 1.0 + np.take(_as_lookup(_MR_TEXTURE, default=0.02), tissue) * _texture(rng, x, y, z)
    if out_of_phase:
        # Voxels mixing fat and water cancel (|W - F|): a dark rim at every fat/organ boundary.
        fatty = np.isin(tissue, [TISSUE[n] for n in _FATTY]).astype(np.float32)
        fat_fraction = ndimage.gaussian_filter(fatty, (0.8, 0.8, 0.4), truncate=3.0)
        image *= 1.0 - 2.0 * np.minimum(fat_fraction, 1.0 - fat_fraction) * np.float32(rng.uniform(0.7, 1.0))
    image = ndimage.gaussian_filter(image, blur_voxels, truncate=3.0)
    bias = _limit_bias(_bias_field(bias_coefficients, x, y, z), tissue, signal)
    image *= bias * np.float32(scale)
    noise_sigma = scale * noise_fraction
    real = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sigma)
    imaginary = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sigma)
    image = np.clip(np.rint(np.hypot(real, imaginary)), 0, 32767).astype(np.int16)
    body = tissue != TISSUE["air"]
    info = {
        "sequence": "T1 out-of-phase" if out_of_phase else "T1 in-phase",
        "relative_signal": {name: round(signal[name], 3) for name in REPORTED_TISSUES},
        "scale": round(scale, 1),
        "noise_sigma": round(noise_sigma, 2),
        "bias_range_in_body": [round(float(bias[body].min()), 3), round(float(bias[body].max()), 3)]
        if body.any() else [1.0, 1.0],
    }
    return image, info


def _limit_bias(bias, tissue, signal, max_ratio=0.85):
    """Tempers the bias field (bias ** t, t < 1) where it would bring the spleen within `max_ratio` of the
    liver's brightness: the liver stays brighter than the spleen in every case, as on real T1 images."""
    liver, spleen = tissue == TISSUE["liver"], tissue == TISSUE["spleen"]
    if not (liver.any() and spleen.any()):
        return bias
    log_gain = float(np.log(np.median(bias[spleen])) - np.log(np.median(bias[liver])))
    allowed = float(np.log(max_ratio * signal["liver"] / signal["spleen"]))
    if log_gain <= allowed:
        return bias
    return bias ** np.float32(max(allowed, 0.0) / log_gain)


def _bias_field(c, x, y, z):
    """exp of a quadratic polynomial of position (normalised by 200 mm): smooth, positive, ≈1 at the centre."""
    c = {k: float(v) for k, v in c.items()}
    xn, yn, zn = x / 200.0, y / 200.0, (z + 100.0) / 200.0
    in_plane = c["x"] * xn + c["y"] * yn + c["xx"] * xn * xn + c["yy"] * yn * yn + c["xy"] * xn * yn
    along_z = c["z"] * zn + c["zz"] * zn * zn
    return np.exp(in_plane.astype(np.float32) + along_z.astype(np.float32))
