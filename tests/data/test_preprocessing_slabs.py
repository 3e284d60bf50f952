"""Slab-wise preparation and restoration equal the whole-volume functions bit for bit.

`prepare_slices` / `restore_label_slices` / `restore_probability_slices` are what streaming inference uses;
`prepare_volume` / `restore_labels` / `restore_probabilities` are the same math on all slices at once.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from test_streaming_predict import GRIDS, streaming_case  # noqa: E402

from keras_cdseg.data.nifti_io import Volume  # noqa: E402
from keras_cdseg.data.preprocessing import (  # noqa: E402
    canonical_slices,
    prepare_slices,
    prepare_volume,
    restore_label_slices,
    restore_labels,
    restore_probabilities,
    restore_probability_slices,
    volume_geometry,
)


def _volume(name):
    volume, config = streaming_case(name, context=1)
    return volume, volume.data > 50, config  # image, the blob as a label, config


def _splits(num_slices, slab):
    return [(start, min(start + slab, num_slices)) for start in range(0, num_slices, slab)]


@pytest.mark.parametrize("name", sorted(GRIDS))
@pytest.mark.parametrize("slab", [1, 2, 5])
def test_prepare_slices_in_slabs_equals_prepare_volume(name, slab):
    volume, _, config = _volume(name)
    whole = prepare_volume(volume, config)
    geometry = volume_geometry(volume, config)
    assert geometry == whole.geometry
    pieces = [prepare_slices(volume.data, geometry, a, b) for a, b in _splits(geometry.num_slices, slab)]
    assert all(piece.dtype == np.float32 and piece.flags.c_contiguous for piece in pieces)
    np.testing.assert_array_equal(np.concatenate(pieces), whole.image)
    assert 0.05 < whole.image.mean() < 0.8  # real content, not an all-zero volume


def test_prepare_slices_reads_integer_and_fortran_inputs_alike():
    volume, _, config = _volume("LPS")
    volume = Volume(np.rint(volume.data).astype(np.int16), volume.affine)
    fortran = Volume(np.asfortranarray(volume.data), volume.affine)
    geometry = volume_geometry(volume, config)
    np.testing.assert_array_equal(
        prepare_slices(fortran.data, geometry, 2, 5), prepare_volume(volume, config).image[2:5]
    )


@pytest.mark.parametrize("name", sorted(GRIDS))
@pytest.mark.parametrize("slab", [1, 3])
def test_restored_slabs_written_through_the_canonical_view_equal_restore_labels(name, slab):
    volume, inside, config = _volume(name)
    prepared = prepare_volume(volume, config, label=Volume(inside.astype(np.uint8), volume.affine))
    geometry = prepared.geometry
    expected = restore_labels(prepared.label, geometry)
    assert np.count_nonzero(expected) > 100
    for order in ("C", "F"):
        output = np.full(geometry.original_shape, 7, dtype=np.uint8, order=order)
        view = canonical_slices(output, geometry)
        assert np.shares_memory(view, output)
        for a, b in _splits(geometry.num_slices, slab):
            view[a:b] = restore_label_slices(prepared.label[a:b], geometry)
        np.testing.assert_array_equal(output, expected)


@pytest.mark.parametrize("name", ["LPS", "oblique", "anisotropic_permuted"])
def test_restored_probability_slabs_equal_restore_probabilities(name):
    volume, _, config = _volume(name)
    prepared = prepare_volume(volume, config)
    rng = np.random.default_rng(1)
    raw = rng.random(prepared.image.shape + (3,), dtype=np.float32)
    probabilities = raw / raw.sum(axis=-1, keepdims=True)
    geometry = prepared.geometry
    expected = restore_probabilities(probabilities, geometry, background_class=0)
    output = np.zeros(expected.shape, dtype=np.float32)
    for a, b in _splits(geometry.num_slices, 2):
        canonical_slices(output, geometry)[a:b] = restore_probability_slices(probabilities[a:b], geometry)
    np.testing.assert_array_equal(output, expected)
    np.testing.assert_allclose(expected.sum(axis=-1), 1.0, atol=1e-5)
    if name == "oblique":  # the only grid here cropped by the prepared window: its border is background
        outside = np.all(expected == [1.0, 0.0, 0.0], axis=-1)
        assert 0 < np.count_nonzero(outside) < outside.size


def test_slab_functions_reject_bad_ranges_and_shapes():
    volume, _, config = _volume("RAS")
    geometry = volume_geometry(volume, config)
    with pytest.raises(ValueError, match="slice range"):
        prepare_slices(volume.data, geometry, 3, geometry.num_slices + 1)
    with pytest.raises(ValueError, match="geometry expects"):
        restore_label_slices(np.zeros((2, 5, 5), np.uint8), geometry)
    assert prepare_slices(volume.data, geometry, 4, 4).shape == (0, geometry.image_size, geometry.image_size)
