"""The preview PNG: one mm scale for the three planes through the organ's centre, the window chosen from the
intensities (no modality input), filled organs with a legend, the verdict and estimated Dice in the caption."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from keras_cdseg.deploy.preview import (
    CLASS_RGB,
    SOFT_TISSUE_WINDOW_HU,
    _caption,
    class_volumes_ml,
    intensity_window,
    render_preview,
    save_preview,
)

REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def _coloured_blobs(rgb):
    """Bounding boxes `(height, width)` of the connected coloured (non-grey) regions, largest first."""
    coloured = (np.abs(rgb[..., 0].astype(int) - rgb[..., 1]) > 20) | (np.abs(rgb[..., 1].astype(int) - rgb[..., 2]) > 20)
    regions, _ = ndimage.label(coloured)
    boxes = [(s[0].stop - s[0].start, s[1].stop - s[1].start, s[1].start) for s in ndimage.find_objects(regions)]
    return sorted(boxes, key=lambda b: -b[0] * b[1])


def test_three_planes_share_one_mm_scale_through_the_organ():
    """A 20 mm cube, off-centre, in a volume of 1 x 1 x 4 mm voxels: it is the same size in every panel."""
    shape, spacing = (60, 50, 20), (1.0, 1.0, 4.0)
    affine = np.diag([*spacing, 1.0])
    labels = np.zeros(shape, np.uint8)
    labels[5:25, 24:44, 12:17] = 1  # 20 x 20 x 20 mm, away from the volume centre
    image = np.full(shape, 300.0, np.float32)  # one grey level: everything coloured is organ
    rgb = render_preview(image, labels, affine, ["background", "liver"], "cube")
    blobs = _coloured_blobs(rgb[: -60])  # above the caption and legend
    assert len(blobs) >= 3
    px_per_mm = 320 / 80.0  # the longest axis is z: 20 slices x 4 mm
    for height, width, _ in blobs[:3]:
        assert abs(height - 20 * px_per_mm) <= 2 and abs(width - 20 * px_per_mm) <= 2, blobs
    assert len({left for _, _, left in blobs[:3]}) == 3  # one cube per panel, side by side


def test_window_is_chosen_from_the_intensities():
    rng = np.random.default_rng(0)
    hu = rng.normal(40, 50, (20, 20, 5))
    hu[:5] = -1000  # air
    assert intensity_window(hu)[:2] == SOFT_TISSUE_WINDOW_HU
    windowed_ct = np.clip(hu, -125, 275)  # BTCV's 8-bit windowed CT still reads as HU
    assert intensity_window(windowed_ct)[:2] == SOFT_TISSUE_WINDOW_HU
    mr = rng.gamma(2.0, 200.0, (20, 20, 5))
    low, high, kind = intensity_window(mr)
    assert kind.startswith("percentiles") and low == pytest.approx(np.percentile(mr, 1)) and high > low


def test_real_ct_preview_fills_organs_and_captions_the_verdict(tmp_path):
    img = nib.load(str(REAL / "ct_abdomen_3mm.nii.gz"))
    organs = np.asarray(nib.load(str(REAL / "ct_abdomen_3mm_organs.nii.gz")).dataobj)
    labels = np.where(organs == 5, 1, np.where(organs == 1, 2, 0)).astype(np.uint8)  # liver 1, spleen 2
    quality = {"verdict": "review", "estimated_dice": 0.673,
               "warnings": [{"code": "low_estimated_dice", "level": "review", "reason": "estimated Dice below 0.80"}]}
    path = tmp_path / "ct_preview.png"
    save_preview(path, np.asarray(img.dataobj), labels, img.affine, ["background", "liver", "spleen"], "ct", quality)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    # Semi-transparent fill: liver pixels are reddish but keep the CT's texture (many distinct shades).
    fill = rgb[(rgb[..., 0] > rgb[..., 1] + 30) & (rgb[..., 0] < 250)]
    assert len(fill) > 2000 and len({tuple(p) for p in fill}) > 50
    for colour in CLASS_RGB[:2]:  # legend swatches (and outlines) of liver and spleen
        assert np.all(rgb == colour, axis=-1).sum() > 100
    without = render_preview(np.asarray(img.dataobj), labels, img.affine, ["background", "liver", "spleen"], "ct")
    assert without.shape == rgb.shape and not np.array_equal(without, rgb)  # only the caption differs
    differing_rows = np.flatnonzero(np.any(without != rgb, axis=(1, 2)))
    panels_bottom = rgb.shape[0] - 60
    assert differing_rows.min() >= panels_bottom
    volumes = class_volumes_ml(labels, img.affine)
    assert volumes[1] == pytest.approx((organs == 5).sum() * 27 / 1000)


def test_caption_text():
    assert _caption("ct", None) == "ct"
    assert _caption("ct", {"verdict": "ok", "estimated_dice": 0.912, "warnings": []}) == "ct   ok (est. Dice 0.91)"
    review = {"verdict": "review", "estimated_dice": None, "warnings": [{"reason": "the model has no quality calibration"}]}
    assert _caption("ct", review) == "ct   review: the model has no quality calibration"
