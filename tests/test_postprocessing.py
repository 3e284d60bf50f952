"""keep_largest_component: several blobs, touching organs, skipped classes, connectivity."""

import numpy as np
import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.inference.postprocessing import keep_largest_component


def _blobs():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:6, 1:6, 1:6] = 1  # liver, 125 voxels
    labels[8:10, 8:10, 8:10] = 1  # liver island, 8 voxels
    labels[0, 11, 11] = 1  # liver speck, 1 voxel
    labels[6:9, 1:4, 1:4] = 2  # spleen touching the liver (face contact at i=5/6), 27 voxels
    labels[10:12, 0:2, 10:12] = 2  # spleen island, 8 voxels
    return labels


def test_keeps_the_largest_blob_of_each_class_and_not_the_touching_neighbour():
    labels = _blobs()
    result = keep_largest_component(labels)
    expected = labels.copy()
    expected[8:10, 8:10, 8:10] = 0
    expected[0, 11, 11] = 0
    expected[10:12, 0:2, 10:12] = 0
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == labels.dtype
    # The input is never modified.
    np.testing.assert_array_equal(labels, _blobs())


def test_skipped_classes_keep_all_their_components():
    result = keep_largest_component(_blobs(), classes=[1])
    assert (result == 2).sum() == 27 + 8
    assert (result == 1).sum() == 125


def test_connectivity_decides_what_is_connected():
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[1, 1, 1] = 1
    labels[2, 2, 2] = 1  # corner contact only: connected with 26, not with 18 or 6
    labels[3:5, 3:5, 3] = 1  # 4 voxels, touching (2, 2, 2) only at a corner
    assert (keep_largest_component(labels, connectivity=26) == 1).sum() == 6
    assert (keep_largest_component(labels, connectivity=6) == 1).sum() == 4


def test_ties_keep_the_first_component_in_scan_order():
    labels = np.zeros((1, 7), np.uint8)
    labels[0, [0, 1, 4, 5]] = 3
    np.testing.assert_array_equal(keep_largest_component(labels)[0], [3, 3, 0, 0, 0, 0, 0])


def test_2d_and_absent_classes():
    labels = np.zeros((6, 6), np.int32)
    labels[0:3, 0:3] = 1
    labels[5, 5] = 1
    result = keep_largest_component(labels, classes=[1, 7])
    assert (result == 1).sum() == 9
    assert keep_largest_component(np.zeros((4, 4), np.uint8)).sum() == 0


@pytest.mark.parametrize(
    "labels, connectivity, message",
    [
        (np.zeros((4, 4), np.float32), 26, "integer"),
        (np.zeros((2, 2, 2, 2), np.uint8), 26, "2D or 3D"),
        (np.zeros((4, 4, 4), np.uint8), 8, "connectivity|expected one of"),
    ],
)
def test_bad_input(labels, connectivity, message):
    with pytest.raises(InputError, match=message):
        keep_largest_component(labels, connectivity=connectivity)
