"""Streaming `predict_volume` equals the whole-volume path bit for bit, and holds only a few slabs.

Whole-volume reference: `prepare_volume` → `predict_prepared` → `restore_probabilities` → arg-max (labels;
the probability map is rounded to float16, then × 255) → `keep_largest_component`. The predictor is a numpy function that mixes the 2T+1
context channels with different weights (so a wrong neighbour at a slab or volume edge changes the
result) and has three classes with speckled, multi-component regions (so post-processing has work to do).
"""

import numpy as np
import pytest
from deploy_fixtures import affine_for, blob_image

from keras_cdseg.config import DataConfig
from keras_cdseg.data.nifti_io import Volume
from keras_cdseg.data.preprocessing import (
    prepare_volume,
    restore_labels,
    restore_labels_from_probability_slices,
    restore_probabilities,
    volume_geometry,
)
from keras_cdseg.inference.volume import (
    PROBABILITY_SCALE,
    iter_batches,
    iter_volume_batches,
    predict_prepared,
    predict_volume,
    segment_prepared,
)
from keras_cdseg.inference.postprocessing import keep_largest_component

# name: (axcodes, spacing_mm, shape, rotation_deg, target_spacing_mm, image_size)
GRIDS = {
    "RAS": ("RAS", (1.3, 1.3, 3.0), (30, 26, 11), 0.0, 1.6, 24),
    "LPS": ("LPS", (0.9, 1.1, 2.5), (34, 28, 10), 0.0, 1.5, 24),
    "oblique": ("LAS", (1.2, 1.2, 4.0), (28, 28, 9), 23.0, 1.5, 20),
    "anisotropic_permuted": ("SPL", (3.0, 0.8, 1.7), (12, 40, 22), 0.0, 1.4, 28),
}


class MixingPredictor:
    """Three-class probabilities from a weighted mix of the context channels; records batch sizes."""

    def __init__(self):
        self.batch_sizes = []

    def __call__(self, slices):
        self.batch_sizes.append(len(slices))
        num_channels = slices.shape[-1]
        weights = 1.0 + 0.7 * np.arange(num_channels, dtype=np.float32)
        weights /= weights.sum()
        mixed = np.zeros(slices.shape[:-1], dtype=np.float32)
        for channel in range(num_channels):  # elementwise only: values cannot depend on the batch split
            mixed += slices[..., channel] * weights[channel]
        # Background (~0.25) -> 0, its bright speckle and the blob rim (0.33..0.6) -> 2, the blob -> 1.
        band = np.minimum(mixed - np.float32(0.33), np.float32(0.6) - mixed)
        logits = np.stack([np.zeros_like(mixed), 20 * (mixed - np.float32(0.6)), 20 * band], -1)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)


def streaming_case(name, context):
    """A float32 `Volume` on grid `name` (blob plus speckled background) and its `DataConfig`."""
    axcodes, spacing_mm, shape, rotation_deg, target_spacing_mm, image_size = GRIDS[name]
    affine = affine_for(axcodes, spacing_mm, shape, rotation_deg=rotation_deg, origin_mm=(2.0, -1.0, 4.0))
    image, _ = blob_image(shape, affine, radii_mm=(14.0, 11.0, 9.0), centre_mm=(3.0, -2.0, 1.0))
    noise = np.random.default_rng(3).normal(0, 40, shape)  # speckle: many small class-2 components
    data = (image + noise * (image < 0)).astype(np.float32)
    config = DataConfig(image_size=image_size, target_spacing_mm=target_spacing_mm, context=context)
    return Volume(data=data, affine=affine), config


def _whole_volume_labels(predict, volume, config, classes, batch_size):
    prepared = prepare_volume(volume, config)
    probabilities = predict_prepared(predict, prepared.image, config.context, batch_size)
    labels = np.argmax(restore_probabilities(probabilities, prepared.geometry), axis=-1).astype(np.uint8)
    return keep_largest_component(labels, connectivity=26, classes=list(classes)) if classes else labels


@pytest.mark.parametrize("name", sorted(GRIDS))
@pytest.mark.parametrize("context", [0, 1, 2])
def test_streamed_labels_equal_the_whole_volume_path(name, context):
    volume, config = streaming_case(name, context)
    predict = MixingPredictor()
    num_slices = volume_geometry(volume, config).num_slices
    reference = {}
    for classes in [(), (1, 2)]:
        reference[classes] = _whole_volume_labels(predict, volume, config, classes, batch_size=4)
    counts = np.bincount(reference[()].ravel(), minlength=3)
    assert counts.min() > 20 and not np.array_equal(reference[()], reference[(1, 2)])
    for batch_size in [1, 3, num_slices, num_slices + 5]:
        for classes in [(), (1, 2)]:
            prediction = predict_volume(predict, volume, config, classes, batch_size=batch_size)
            assert prediction.labels.dtype == np.uint8 and prediction.labels.shape == volume.shape
            np.testing.assert_array_equal(prediction.labels, reference[classes])
    assert max(predict.batch_sizes) == num_slices  # the largest batch asked for, never more


def test_labels_follow_the_restored_probabilities_between_network_pixels():
    """A soft edge restored as probabilities lands nearer the true boundary than the arg-max's 2.4 mm staircase."""
    shape = (96, 80, 6)
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    image, inside = blob_image(shape, affine, radii_mm=(27.0, 19.0, 40.0), centre_mm=(37.0, 31.0, 8.0))
    volume = Volume(data=image.astype(np.float32), affine=affine)
    config = DataConfig(image_size=40, target_spacing_mm=2.4, context=0)

    def soft_edge(slices):  # P(organ) rises smoothly across the resampled edge, crossing 0.5 half way
        organ = 1.0 / (1.0 + np.exp(-12.0 * (slices[..., 0] - 0.5)))
        return np.stack([1.0 - organ, organ], axis=-1).astype(np.float32)

    prepared = prepare_volume(volume, config)
    staircase = restore_labels(segment_prepared(soft_edge, prepared.image, 0), prepared.geometry)
    labels = predict_volume(soft_edge, volume, config, ()).labels
    probabilities = predict_prepared(soft_edge, prepared.image, 0)
    canonical = restore_labels_from_probability_slices(probabilities, prepared.geometry)  # RAS slice order: z first for this RAS grid
    np.testing.assert_array_equal(np.moveaxis(canonical, 0, -1), labels)

    def dice(mask):
        return 2 * np.count_nonzero(mask & inside) / (np.count_nonzero(mask) + np.count_nonzero(inside))

    assert dice(labels == 1) > dice(staircase == 1) + 0.01
    assert dice(labels == 1) > 0.97
    assert not np.array_equal(labels, staircase)


@pytest.mark.parametrize("name", ["LPS", "oblique", "anisotropic_permuted"])
def test_streamed_probabilities_equal_the_whole_volume_path(name):
    volume, config = streaming_case(name, context=1)
    predict = MixingPredictor()
    prepared = prepare_volume(volume, config)
    stored = predict_prepared(predict, prepared.image, config.context, batch_size=5).astype(np.float16)
    expected = np.empty(volume.shape + (3,), dtype=np.uint8)
    for index in range(3):  # one class at a time, as the whole-volume path did
        channel = stored[..., index : index + 1].astype(np.float32)
        values = restore_probabilities(channel, prepared.geometry, background_class=0 if index == 0 else None)
        expected[..., index] = np.rint(np.clip(values[..., 0], 0, 1) * PROBABILITY_SCALE)
    for batch_size in [2, 7]:
        prediction = predict_volume(predict, volume, config, (), batch_size=batch_size, with_probabilities=True)
        np.testing.assert_array_equal(prediction.probabilities, expected)
    assert 0 < np.count_nonzero(expected[..., 2] > 128) < expected[..., 2].size


@pytest.mark.parametrize("context, batch_size", [(0, 1), (1, 1), (2, 1), (2, 3), (1, 16), (2, 5)])
def test_volume_batches_equal_batches_of_the_prepared_volume(context, batch_size):
    volume, config = streaming_case("LPS", context)
    prepared = prepare_volume(volume, config)
    geometry = volume_geometry(volume, config)
    streamed = list(iter_volume_batches(volume.data, geometry, context, batch_size))
    whole = list(iter_batches(prepared.image, context, batch_size))
    assert len(streamed) == len(whole)
    for (indices_s, slices_s), (indices_w, slices_w) in zip(streamed, whole):
        np.testing.assert_array_equal(indices_s, indices_w)
        np.testing.assert_array_equal(slices_s, slices_w)  # edge slices repeat at both ends
    first, last = streamed[0][1], streamed[-1][1]
    if context:
        np.testing.assert_array_equal(first[0, ..., 0], first[0, ..., context])
        np.testing.assert_array_equal(last[-1, ..., -1], last[-1, ..., context])


def test_predict_volume_keeps_the_input_layout_and_rejects_a_bad_batch_size():
    volume, config = streaming_case("RAS", context=1)
    fortran = Volume(np.asfortranarray(volume.data), volume.affine)
    labels = predict_volume(MixingPredictor(), fortran, config, (1, 2), batch_size=4).labels
    assert labels.flags.f_contiguous
    np.testing.assert_array_equal(labels, _whole_volume_labels(MixingPredictor(), volume, config, (1, 2), 4))
    with pytest.raises(ValueError, match="batch_size"):
        predict_volume(MixingPredictor(), volume, config, batch_size=0)


def test_largest_component_in_place_equals_copy_and_handles_more_than_65535_components():
    from scipy import ndimage

    index = np.indices((60, 60, 40)).sum(axis=0)
    labels = (index % 2 == 0).astype(np.uint8)  # 72000 isolated voxels under 6-connectivity
    labels[10:14, 10:14, 10:14] = 1  # joins its touching neighbours into the one large component
    labels[40:42, 40:42, 30:32] = 2
    components, _ = ndimage.label(labels == 1)
    largest = np.argmax(np.bincount(components.ravel())[1:]) + 1
    expected = np.where(labels == 1, (components == largest).astype(np.uint8), labels)
    assert np.count_nonzero(expected == 1) > 64
    np.testing.assert_array_equal(keep_largest_component(labels, connectivity=6), expected)
    in_place = labels.copy(order="F")
    assert keep_largest_component(in_place, connectivity=6, in_place=True) is in_place
    np.testing.assert_array_equal(in_place, expected)
