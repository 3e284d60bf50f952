"""Random, anatomy-preserving augmentation of training slices: ranges (numpy) and the TF ops that apply them.

Parameters are drawn per slice in numpy from the step's seeded generator (so a seed fixes every batch) and
applied in TF on the `[B, H, W, 2T+1]` batch, all channels of a slice alike:

    rotate/zoom -- organ contrast -- gamma, contrast, brightness -- bias field -- other window | compression -- noise

Every intensity change is modality-blind: it is drawn for any slice, CT or MR. Two of them exist because of
how users' scans differ from the training scans *after* per-volume percentile rescaling:
- "window": clipping to a narrower sub-range, as a CT exported with another display window looks;
- "compression": tissue squeezed into a narrow band high in [0, 1] with the outside of the body at 0, which is
  what full-range HU CT (air −1000, bone +1500) becomes when its percentiles, not a soft-tissue window, set
  the range (the real CT in `tests/data/real`: liver 0.83, kidneys 0.80 against 0.64–0.88 for windowed CT).
And one uses the label: "organ contrast" shifts each labelled organ's intensity by its own random amount, as
contrast phases do in CT (kidneys at 12–16 HU in the real non-contrast CT, 150–230 HU in portal-venous BTCV) and
sequences do in MR (liver brighter than spleen on T1, darker on T2), so organs are told apart by shape and
position, not only by brightness.
No flips: the liver is on the right.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_cdseg.errors import InputError

# angle, scale, gamma, contrast, brightness, bias amplitude, 5 bias coefficients, window on, window low,
# window width, compression on, compression offset, compression scale, noise std, then one intensity offset for
# each of the label values 1..MAX_ORGANS (values above it get none)
MAX_ORGANS = 8
IDENTITY_PARAMS = (0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0) + (0.0,) * MAX_ORGANS
NUM_PARAMS = len(IDENTITY_PARAMS)
_ORGAN_OFFSETS = slice(18, 18 + MAX_ORGANS)
# Closing radius (pixels) of the body mask used by the compression: bridges fat clipped to 0 inside the body.
_BODY_CLOSING = 5
_BODY_THRESHOLD = 0.05


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Augmentation ranges (uniform; gamma log-uniform); each optional change has its own probability.

    Args:
        rotation_deg: float. Rotation in [-rotation_deg, rotation_deg] about the slice centre. Defaults to 10.
        scale_range: (float, float). Zoom factor range. Defaults to (0.9, 1.1).
        gamma_range: (float, float). Intensity gamma `x ** gamma` range. Defaults to (0.7, 1.5).
        contrast_range: (float, float). Multiplier range applied after gamma. Defaults to (0.9, 1.1).
        brightness_range: (float, float). Offset range added after the contrast. Defaults to (-0.1, 0.1).
        bias_probability: float. Chance of a smooth multiplicative field `exp(a · p(u, v))`, p a random
            quadratic over the slice (MR coil shading). Defaults to 0.
        bias_max: float. Largest amplitude `a`. Defaults to 0.3.
        window_probability: float. Chance of clipping to a random sub-window `[low, low + width]` of [0, 1]
            and stretching it back. Defaults to 0.
        window_width_range: (float, float). Sub-window width range. Defaults to (0.5, 0.9).
        compression_probability: float. Chance of mapping the body's intensities to `offset + scale · x`
            (the outside of the body to `scale · x`, near 0). Defaults to 0.
        compression_scale_range: (float, float). Range of `scale`. Defaults to (0.15, 0.6).
        compression_offset_range: (float, float). Range of `offset`, capped so `offset + scale <= 1`.
            Defaults to (0.2, 0.75).
        noise_probability: float. Chance of additive Gaussian noise. Defaults to 0.
        noise_max: float. Largest noise standard deviation (the image spans [0, 1]). Defaults to 0.05.
        organ_contrast_probability: float. Chance of shifting each labelled organ's intensities by its own
            offset, uniform in [-organ_contrast_max, organ_contrast_max]. Defaults to 0.
        organ_contrast_max: float. Largest organ offset. Defaults to 0.2.
    """

    rotation_deg: float = 10.0
    scale_range: tuple = (0.9, 1.1)
    gamma_range: tuple = (0.7, 1.5)
    contrast_range: tuple = (0.9, 1.1)
    brightness_range: tuple = (-0.1, 0.1)
    bias_probability: float = 0.0
    bias_max: float = 0.3
    window_probability: float = 0.0
    window_width_range: tuple = (0.5, 0.9)
    compression_probability: float = 0.0
    compression_scale_range: tuple = (0.15, 0.6)
    compression_offset_range: tuple = (0.2, 0.75)
    noise_probability: float = 0.0
    noise_max: float = 0.05
    organ_contrast_probability: float = 0.0
    organ_contrast_max: float = 0.2

    def sample(self, rng, num_samples):
        """float32 `[num_samples, NUM_PARAMS]` in the order of `IDENTITY_PARAMS`.

        The first five are drawn first and in the same order as before the optional changes existed, so the
        "standard" preset reproduces earlier runs' batches; the optional ones draw only when enabled.
        """
        params = np.tile(np.asarray(IDENTITY_PARAMS, np.float64), (num_samples, 1))
        params[:, 0] = np.deg2rad(rng.uniform(-self.rotation_deg, self.rotation_deg, num_samples))
        params[:, 1] = rng.uniform(*self.scale_range, num_samples)
        params[:, 2] = np.exp(rng.uniform(*np.log(self.gamma_range), num_samples))
        params[:, 3] = rng.uniform(*self.contrast_range, num_samples)
        params[:, 4] = rng.uniform(*self.brightness_range, num_samples)
        if self.bias_probability > 0:
            on = rng.random(num_samples) < self.bias_probability
            params[:, 5] = on * rng.uniform(0, self.bias_max, num_samples)
            coefficients = rng.normal(size=(num_samples, 5))
            params[:, 6:11] = coefficients / np.maximum(np.abs(coefficients).sum(axis=1, keepdims=True), 1e-6)
        if self.window_probability > 0:
            on = rng.random(num_samples) < self.window_probability
            width = rng.uniform(*self.window_width_range, num_samples)
            low = rng.uniform(0, 1, num_samples) * (1 - width)
            params[:, 11], params[:, 12] = on, np.where(on, low, 0.0)
            params[:, 13] = np.where(on, width, 1.0)
        if self.compression_probability > 0:
            on = rng.random(num_samples) < self.compression_probability
            scale = rng.uniform(*self.compression_scale_range, num_samples)
            offset = np.minimum(rng.uniform(*self.compression_offset_range, num_samples), 1 - scale)
            params[:, 14], params[:, 15] = on, np.where(on, offset, 0.0)
            params[:, 16] = np.where(on, scale, 1.0)
        if self.noise_probability > 0:
            on = rng.random(num_samples) < self.noise_probability
            params[:, 17] = on * rng.uniform(0, self.noise_max, num_samples)
        if self.organ_contrast_probability > 0:
            on = rng.random(num_samples) < self.organ_contrast_probability
            offsets = rng.uniform(-self.organ_contrast_max, self.organ_contrast_max, (num_samples, MAX_ORGANS))
            params[:, _ORGAN_OFFSETS] = on[:, None] * offsets
        return params.astype(np.float32)


PRESETS = {
    "standard": Augmentation(),
    # For real scans (the "real-cpu" recipe): wider spatial ranges for body sizes and fields of view, and
    # the intensity conventions of other scanners, windows and sequences.
    "real": Augmentation(
        rotation_deg=15.0,
        scale_range=(0.8, 1.25),
        gamma_range=(0.7, 1.5),
        contrast_range=(0.75, 1.25),
        brightness_range=(-0.1, 0.1),
        bias_probability=0.3,
        bias_max=0.4,
        window_probability=0.15,
        compression_probability=0.25,
        noise_probability=0.2,
        noise_max=0.05,
        organ_contrast_probability=0.3,
        organ_contrast_max=0.2,
    ),
}


def augmentation_preset(name):
    """The `Augmentation` of a preset name ("standard" or "real")."""
    if name not in PRESETS:
        raise InputError("augmentation", f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def augment_batch(image, label, params, seed=None):
    """Applies per-slice `params` `[B, NUM_PARAMS]` to `image` `[B, H, W, C]` in [0, 1] and `label` `[B, H, W]`.

    `seed` (a `[2]` int tensor) drives the noise; without it no noise is added.
    """
    p = tf.unstack(params, axis=1)
    angle, scale, gamma, contrast, brightness = p[:5]
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    transforms = _rotation_scale_transforms(angle, scale, tf.cast(height, tf.float32), tf.cast(width, tf.float32))

    def warp(values, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=values,
            transforms=transforms,
            output_shape=tf.stack([height, width]),
            fill_value=0.0,
            interpolation=interpolation,
            fill_mode="CONSTANT",
        )

    image = warp(image, "BILINEAR")
    label = warp(label[..., None], "NEAREST")[..., 0]
    body = _body_mask(image)  # before the intensity jitter lifts the background off 0
    image = image + _organ_offsets(label, params[:, _ORGAN_OFFSETS])
    # x ** gamma as exp(gamma · log x): Eigen vectorises exp/log but not pow (5× faster); log 0 = -inf → 0.
    image = tf.exp(tf.math.log(tf.clip_by_value(image, 0.0, 1.0)) * _per_slice(gamma))
    image = image * _per_slice(contrast) + _per_slice(brightness)
    image = image * _bias_field(params[:, 5], params[:, 6:11], height, width)
    image = _window(image, p[11], p[12], p[13])
    image = _compress(image, body, p[14], p[15], p[16])
    if seed is not None:
        image = image + _per_slice(p[17]) * tf.random.stateless_normal(tf.shape(image), seed)
    return image, label


def _per_slice(values):
    return values[:, None, None, None]


def _organ_offsets(label, offsets):
    # offsets[b, k] applies where label == k + 1; a gather over [0, offsets...] indexed by the label value.
    table = tf.concat([tf.zeros_like(offsets[:, :1]), offsets], axis=1)  # [B, 1 + MAX_ORGANS]
    index = tf.minimum(tf.cast(label, tf.int32), MAX_ORGANS + 1)
    table = tf.concat([table, tf.zeros_like(offsets[:, :1])], axis=1)  # values above MAX_ORGANS: no offset
    return tf.gather(table, index, batch_dims=1)[..., None]


def _bias_field(amplitude, coefficients, height, width):
    u = tf.linspace(-1.0, 1.0, height)[:, None]
    v = tf.linspace(-1.0, 1.0, width)[None, :]
    basis = tf.stack([u + 0 * v, v + 0 * u, u * v, u * u + 0 * v, v * v + 0 * u], axis=-1)  # [H, W, 5]
    field = tf.einsum("hwk,bk->bhw", basis, coefficients)
    return tf.exp(amplitude[:, None, None] * field)[..., None]


def _window(image, on, low, width):
    windowed = tf.clip_by_value((image - _per_slice(low)) / _per_slice(width), 0.0, 1.0)
    return tf.where(_per_slice(on) > 0.5, windowed, image)


def _body_mask(image):
    # Above a near-zero level on the middle channel, closed so that fat clipped to 0 inside the body stays in.
    centre = image[..., image.shape[-1] // 2 : image.shape[-1] // 2 + 1]
    inside = tf.cast(centre > _BODY_THRESHOLD, tf.float32)
    size = [1, 2 * _BODY_CLOSING + 1, 2 * _BODY_CLOSING + 1, 1]
    return -tf.nn.max_pool2d(-tf.nn.max_pool2d(inside, size, 1, "SAME"), size, 1, "SAME")


def _compress(image, body, on, offset, scale):
    compressed = _per_slice(scale) * tf.clip_by_value(image, 0.0, 1.0) + _per_slice(offset) * body
    return tf.where(_per_slice(on) > 0.5, compressed, image)


def _rotation_scale_transforms(angle, scale, height, width):
    # ImageProjectiveTransform maps output (col, row) to input: input = A (output - centre) + centre.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    zeros = tf.zeros_like(angle)
    return tf.stack(
        [
            cos,
            -sin,
            centre_x - cos * centre_x + sin * centre_y,
            sin,
            cos,
            centre_y - sin * centre_x - cos * centre_y,
            zeros,
            zeros,
        ],
        axis=1,
    )
