"""The augmentation presets: identity parameters change nothing, each intensity change does what it claims."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from keras_cdseg.data.augmentation import (  # noqa: E402 - after the TensorFlow check
    IDENTITY_PARAMS,
    NUM_PARAMS,
    PRESETS,
    Augmentation,
    augment_batch,
    augmentation_preset,
)
from keras_cdseg.errors import InputError  # noqa: E402


def _body_slice(size=48):
    """A disc 'body' (0.5) holding a bright 'organ' (0.8) on an air background of exactly 0, 3 channels."""
    rows, cols = np.mgrid[:size, :size]
    radius = np.hypot(rows - size / 2, cols - size / 2)
    image = np.where(radius < size * 0.4, 0.5, 0.0)
    image[(rows - size / 2) ** 2 + (cols - size / 2 - 5) ** 2 < 36] = 0.8
    label = (image > 0.7).astype(np.uint8)
    return np.repeat(image[None, ..., None], 3, axis=-1).astype(np.float32), label[None]


def _apply(image, label, **changes):
    params = np.asarray(IDENTITY_PARAMS, np.float32)[None].copy()
    names = ["angle", "scale", "gamma", "contrast", "brightness", "bias", "c0", "c1", "c2", "c3", "c4",
             "window", "window_low", "window_width", "compress", "offset", "compress_scale", "noise"]  # fmt: skip
    for name, value in changes.items():
        params[0, names.index(name)] = value
    seed = tf.constant([1, 2], tf.int64)
    x, y = augment_batch(tf.constant(image), tf.constant(label), tf.constant(params), seed)
    return x.numpy(), y.numpy()


def test_identity_parameters_leave_the_batch_unchanged():
    image, label = _body_slice()
    x, y = _apply(image, label)
    np.testing.assert_allclose(x, image, atol=1e-6)
    np.testing.assert_array_equal(y, label)
    assert len(IDENTITY_PARAMS) == NUM_PARAMS


def test_standard_preset_draws_the_five_classic_parameters_only():
    params = PRESETS["standard"].sample(np.random.default_rng(0), 64)
    assert params.shape == (64, NUM_PARAMS)
    np.testing.assert_array_equal(params[:, 5:], np.tile(np.asarray(IDENTITY_PARAMS[5:], np.float32), (64, 1)))
    # the same generator state gives the same classic draws as before the optional changes existed
    rng = np.random.default_rng(0)
    angle = np.deg2rad(rng.uniform(-10, 10, 64))
    np.testing.assert_allclose(params[:, 0], angle.astype(np.float32))


def test_real_preset_turns_each_optional_change_on_for_some_slices():
    params = augmentation_preset("real").sample(np.random.default_rng(0), 2000)
    assert 0.2 < np.mean(params[:, 5] > 0) < 0.4  # bias field, probability 0.3
    assert 0.1 < np.mean(params[:, 11]) < 0.2  # other window, 0.15
    assert 0.2 < np.mean(params[:, 14]) < 0.3  # compression, 0.25
    assert 0.15 < np.mean(params[:, 17] > 0) < 0.25  # noise, 0.2
    compressed = params[:, 14] > 0.5
    assert np.all(params[compressed, 15] + params[compressed, 16] <= 1 + 1e-6)
    with pytest.raises(InputError, match="unknown preset"):
        augmentation_preset("heavy")


def test_compression_lifts_the_body_and_keeps_the_air_dark():
    # What full-range HU CT looks like after percentile rescaling: tissue high and close together, air at 0.
    image, label = _body_slice(size=64)  # the body's closing stays clear of the slice's edges
    x, _ = _apply(image, label, compress=1.0, offset=0.6, compress_scale=0.3)
    organ, body, air = label[0] == 1, (image[0, ..., 0] == 0.5), image[0, ..., 0] == 0
    assert np.allclose(x[0][organ], 0.6 + 0.3 * 0.8, atol=1e-5)
    assert np.allclose(x[0][body], 0.6 + 0.3 * 0.5, atol=1e-5)
    assert np.max(x[0][air]) == 0.0


def test_window_clips_and_stretches_a_sub_range():
    image, label = _body_slice()
    x, _ = _apply(image, label, window=1.0, window_low=0.4, window_width=0.5)
    assert np.allclose(x[0][label[0] == 1], 0.8, atol=1e-5)  # (0.8 - 0.4) / 0.5
    assert np.allclose(x[0][image[0, ..., 0] == 0.5], 0.2, atol=1e-5)
    assert x.min() == 0.0


def test_bias_field_is_smooth_and_multiplicative_and_noise_has_its_std():
    image = np.full((1, 64, 64, 3), 0.5, np.float32)
    label = np.zeros((1, 64, 64), np.uint8)
    x, _ = _apply(image, label, bias=0.4, c0=1.0)
    ratio = x[0, ..., 1] / 0.5
    assert np.isclose(ratio.max(), np.exp(0.4), rtol=1e-3) and np.isclose(ratio.min(), np.exp(-0.4), rtol=1e-3)
    assert np.abs(np.diff(ratio, axis=0)).max() < 0.02  # smooth: a linear ramp across 64 rows
    x, _ = _apply(image, label, noise=0.05)
    assert abs(np.std(x - 0.5) - 0.05) < 0.005


def test_augmentation_is_a_frozen_dataclass_with_validated_use():
    with pytest.raises(Exception):
        Augmentation().rotation_deg = 3  # frozen


def test_organ_contrast_shifts_each_organ_by_its_own_offset():
    image, label = _body_slice(size=64)
    label = label.copy()
    label[0, :4, :4] = 2  # a second 'organ' in the corner
    x, y = _apply(image, label, c0=0.0)  # identity first
    np.testing.assert_allclose(x, image, atol=1e-6)
    params = np.asarray(IDENTITY_PARAMS, np.float32)[None].copy()
    params[0, 18], params[0, 19] = 0.1, 0.05  # label 1, label 2 (the gamma step clips to [0, 1] after)
    x, _ = augment_batch(tf.constant(image), tf.constant(label), tf.constant(params))
    x = x.numpy()
    np.testing.assert_allclose(x[0][label[0] == 1], 0.9, atol=1e-6)
    np.testing.assert_allclose(x[0][label[0] == 2], 0.05, atol=1e-6)
    np.testing.assert_allclose(x[0][label[0] == 0], image[0][label[0] == 0], atol=1e-6)
    params = augmentation_preset("real").sample(np.random.default_rng(0), 1000)[:, 18:]
    shifted = np.any(params != 0, axis=1)
    assert 0.25 < shifted.mean() < 0.35 and np.abs(params).max() <= 0.2
