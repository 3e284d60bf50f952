"""Overlay PNGs: slice choice by per-slice Dice, RAS display whatever the storage order, 2D input."""

import numpy as np
from PIL import Image

from keras_cdseg.evaluation.overlays import pick_slices, save_case_overlay


def test_pick_slices_by_per_slice_dice():
    mask_gt = np.zeros((6, 6, 5), bool)
    mask_pred = np.zeros((6, 6, 5), bool)
    mask_gt[1:5, 1:5, 1:4] = True  # 16 voxels on slices 1, 2, 3
    mask_pred[1:5, 1:5, 1] = True  # slice 1: Dice 1
    mask_pred[1:3, 1:5, 2] = True  # slice 2: Dice 2*8/24
    mask_pred[0, 0, 4] = True  # slice 4: Dice 0 (prediction only); slice 3: Dice 0 (reference only)
    picks = pick_slices(mask_gt, mask_pred)
    assert [(name, index) for name, index, _ in picks] == [("worst", 3), ("median", 2), ("best", 1)]
    assert picks[1][2] == 2 * 8 / 24
    empty = np.zeros((4, 4, 7), bool)
    assert [index for _, index, _ in pick_slices(empty, empty)] == [3, 3, 3]


def _ras_case():
    rng = np.random.default_rng(0)
    labels = np.zeros((20, 16, 6), np.uint8)
    labels[2:9, 3:12, 1:5] = 1  # low i: the patient's left (RAS: i grows toward the patient's right)
    pred = np.roll(labels, 1, axis=1)
    image = rng.normal(size=labels.shape).astype(np.float32)
    return labels, pred, image


def test_storage_order_does_not_change_the_picture(tmp_path):
    labels, pred, image = _ras_case()
    ras_affine = np.diag([0.8, 1.0, 2.0, 1.0])
    save_case_overlay(tmp_path / "ras.png", labels, pred, 1, (0.8, 1.0, 2.0), image, "x", ras_affine)
    # The same volume stored L-P-I (every axis reversed) with the matching affine.
    flip = (slice(None, None, -1),) * 3
    lpi_affine = np.diag([-0.8, -1.0, -2.0, 1.0])
    lpi_affine[:3, 3] = [19 * 0.8, 15 * 1.0, 5 * 2.0]
    save_case_overlay(tmp_path / "lpi.png", labels[flip], pred[flip], 1, (0.8, 1.0, 2.0), image[flip], "x", lpi_affine)
    with Image.open(tmp_path / "ras.png") as ras, Image.open(tmp_path / "lpi.png") as lpi:
        ras_pixels, lpi_pixels = np.asarray(ras), np.asarray(lpi)
    assert ras_pixels.shape == lpi_pixels.shape
    top = 2 * 14 + 4  # captions hold file slice numbers, which differ; the panels below must not
    np.testing.assert_array_equal(ras_pixels[top:], lpi_pixels[top:])
    # Radiological view puts the patient's left on the image's right: the organ's contours are in the right half.
    panel = ras_pixels[top:, : ras_pixels.shape[1] // 3]
    green = np.argwhere((panel[..., 1] > 200) & (panel[..., 0] < 50))
    assert green[:, 1].mean() > panel.shape[1] / 2


def test_2d_input(tmp_path):
    labels = np.zeros((10, 12), np.uint8)
    labels[2:6, 3:9] = 2
    save_case_overlay(tmp_path / "flat.png", labels, labels, 2, (1.0, 1.0))
    with Image.open(tmp_path / "flat.png") as png:
        assert png.height > 256
