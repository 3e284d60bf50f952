"""Preview PNGs a reader can glance at: axial, coronal and sagittal planes through the organ's centre.

    +---------------+ +---------------+ +-----------+
    | axial         | | coronal       | | sagittal  |   one mm scale for all three panels
    |   (filled,    | |               | |           |   organs filled semi-transparently, outlined
    |    outlined)  | +---------------+ +-----------+
    +---------------+
    ct_abdomen   review (est. Dice 0.67): estimated Dice below 0.80
    [■] liver 1656 mL   [■] spleen 180 mL

Planes are shown in the radiological convention (patient right on the image's left, anterior and superior
up) after reorienting to the closest RAS axes, so any stored orientation looks the same. The intensity
window is chosen without a modality label: an image whose low end is in Hounsfield units (air, fat below
-100) gets the abdominal soft-tissue window (W 400, L 40), anything else robust percentiles. Drawn with
Pillow, headless.
"""

import numpy as np
from nibabel import orientations as nio
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from keras_cdseg.io_utils import atomic_path

PANEL_PX = 320  # the longest body axis, in pixels; the other axes follow at the same mm scale
SOFT_TISSUE_WINDOW_HU = (-160.0, 240.0)  # W 400, L 40
HU_LOW_END = -100.0  # a 1st percentile below this is air or fat in HU: a CT-like image
ROBUST_PERCENTILES = (1.0, 99.0)
FILL_ALPHA = 0.35
CLASS_RGB = ((255, 60, 60), (60, 160, 255), (255, 220, 0), (0, 220, 120), (220, 80, 255), (255, 140, 0))
_GAP_PX = 6
_MARGIN_PX = 6
_LINE_PX = 18
_BACKGROUND = (0, 0, 0)
_TEXT = (235, 235, 235)


def preview_planes(image, labels, affine, centre_value=None):
    """The three display planes `[(name, grey [rows, cols], labels [rows, cols], (row_mm, col_mm))]`.

    Planes cross the centre of mass of `centre_value` (default: the largest labelled class; the volume
    centre if nothing is labelled).
    """
    orientation = nio.io_orientation(np.asarray(affine)).astype(int)
    image_ras = nio.apply_orientation(np.asarray(image), orientation)
    labels_ras = nio.apply_orientation(np.asarray(labels), orientation)
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    spacing_ras = np.empty(3)
    for in_axis, (out_axis, _) in enumerate(orientation):
        spacing_ras[out_axis] = spacing[in_axis]
    if centre_value is None:
        counts = np.bincount(np.asarray(labels_ras, np.int64).ravel().clip(0))
        counts[0] = 0
        centre_value = int(counts.argmax()) if counts.any() else None
    if centre_value is not None and (labels_ras == centre_value).any():
        centre = [int(round(c)) for c in ndimage.center_of_mass(labels_ras == centre_value)]
    else:
        centre = [n // 2 for n in labels_ras.shape]
    x, y, z = centre
    # Reversing x puts patient right on the left; reversing y/z puts anterior/superior at the top.
    return [
        ("axial", image_ras[::-1, ::-1, z].T, labels_ras[::-1, ::-1, z].T, (spacing_ras[1], spacing_ras[0])),
        ("coronal", image_ras[::-1, y, ::-1].T, labels_ras[::-1, y, ::-1].T, (spacing_ras[2], spacing_ras[0])),
        ("sagittal", image_ras[x, ::-1, ::-1].T, labels_ras[x, ::-1, ::-1].T, (spacing_ras[2], spacing_ras[1])),
    ]


def intensity_window(image):
    """`(low, high, kind)`: the soft-tissue window for CT-like intensities, else robust percentiles."""
    values = np.asarray(image, np.float32).reshape(-1)
    values = values[:: max(1, values.size // (1 << 20))]
    low, high = (float(v) for v in np.percentile(values, ROBUST_PERCENTILES))
    if low < HU_LOW_END and high > 0.0:
        return (*SOFT_TISSUE_WINDOW_HU, "soft tissue W400 L40")
    return low, max(high, low + 1e-6), "percentiles 1-99"


def class_volumes_ml(labels, affine):
    """`{value: mL}` of every non-zero value of the label map."""
    voxel_ml = abs(float(np.linalg.det(np.asarray(affine, np.float64)[:3, :3]))) / 1000.0
    counts = np.bincount(np.asarray(labels, np.int64).ravel().clip(0))
    return {int(v): float(counts[v]) * voxel_ml for v in np.flatnonzero(counts) if v}


def render_preview(image, labels, affine, class_names=None, title="", quality=None):
    """An RGB uint8 array: the three planes at one mm scale, filled organs, a caption and a legend.

    Args:
        image, labels: arrays on the same grid. affine: 4 × 4 voxel -> world (mm).
        class_names: sequence indexed by label value (e.g. a model card's `class_names`), or None.
        title: str. The case name, first in the caption.
        quality: dict or None. The case's quality record; its verdict and estimated Dice go in the caption.
    """
    low, high, _ = intensity_window(image)
    planes = preview_planes(image, labels, affine)
    extent_mm = max(max(grey.shape[0] * row_mm, grey.shape[1] * col_mm) for _, grey, _, (row_mm, col_mm) in planes)
    px_per_mm = PANEL_PX / max(extent_mm, 1e-6)
    panels = [_panel(name, grey, plane_labels, spacing, px_per_mm, low, high)
              for name, grey, plane_labels, spacing in planes]  # fmt: skip
    font = _font()
    volumes = class_volumes_ml(labels, affine)
    caption = _caption(title, quality)
    width = max(sum(p.width for p in panels) + _GAP_PX * (len(panels) - 1), 360) + 2 * _MARGIN_PX
    panels_height = max(p.height for p in panels)
    legend_rows = max(1, -(-len(volumes) // 3))
    height = _MARGIN_PX + panels_height + _MARGIN_PX + _LINE_PX * (1 + legend_rows) + _MARGIN_PX
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    left = _MARGIN_PX
    for panel in panels:
        canvas.paste(panel, (left, _MARGIN_PX))
        left += panel.width + _GAP_PX
    top = _MARGIN_PX + panels_height + _MARGIN_PX
    draw.text((_MARGIN_PX, top), caption, fill=_TEXT, font=font)
    for i, (value, ml) in enumerate(sorted(volumes.items())):
        row, column = divmod(i, 3)
        x, y = _MARGIN_PX + column * ((width - 2 * _MARGIN_PX) // 3), top + _LINE_PX * (1 + row)
        draw.rectangle((x, y + 3, x + 11, y + 14), fill=_colour(value), outline=_TEXT)
        draw.text((x + 16, y), f"{_class_name(class_names, value)} {ml:.0f} mL", fill=_TEXT, font=font)
    if not volumes:
        draw.text((_MARGIN_PX, top + _LINE_PX), "nothing segmented", fill=_TEXT, font=font)
    return np.asarray(canvas)


def save_preview(path, image, labels, affine, class_names=None, title="", quality=None):
    """Writes `render_preview(...)` as a PNG atomically."""
    rgb = render_preview(image, labels, affine, class_names, title, quality)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def _panel(name, grey, plane_labels, spacing_mm, px_per_mm, low, high):
    rows, cols = grey.shape
    row_mm, col_mm = spacing_mm
    size = (max(1, int(round(cols * col_mm * px_per_mm))), max(1, int(round(rows * row_mm * px_per_mm))))
    scaled = np.clip((grey.astype(np.float32) - low) / (high - low), 0, 1) * 255
    grey_img = np.asarray(Image.fromarray(scaled.astype(np.uint8)).resize(size, Image.BILINEAR), np.float32)
    label_img = np.asarray(Image.fromarray(plane_labels.astype(np.uint8)).resize(size, Image.NEAREST))
    rgb = np.repeat(grey_img[..., None], 3, axis=2)
    for value in (int(v) for v in np.unique(label_img) if v):
        mask = label_img == value
        colour = np.asarray(_colour(value), np.float32)
        rgb[mask] = (1 - FILL_ALPHA) * rgb[mask] + FILL_ALPHA * colour
        rgb[mask & ~ndimage.binary_erosion(mask, border_value=0)] = colour
    panel = Image.fromarray(rgb.round().astype(np.uint8))
    draw = ImageDraw.Draw(panel)
    draw.text((3, 2), name, fill=(255, 255, 255), font=_font(11))
    if name != "sagittal":
        draw.text((3, panel.height // 2 - 6), "R", fill=(255, 255, 255), font=_font(11))
    return panel


def _caption(title, quality):
    if not quality or not quality.get("verdict"):
        return title
    estimate = quality.get("estimated_dice")
    verdict = quality["verdict"] + (f" (est. Dice {estimate:.2f})" if estimate is not None else "")
    reasons = "; ".join(w["reason"] for w in quality.get("warnings", []))
    return f"{title}   {verdict}" + (f": {reasons}" if reasons else "")


def _class_name(class_names, value):
    return str(class_names[value]) if class_names is not None and value < len(class_names) else str(value)


def _colour(value):
    return CLASS_RGB[(value - 1) % len(CLASS_RGB)]


def _font(size=13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()
