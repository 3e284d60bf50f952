"""Preview PNGs: axial, coronal and sagittal planes through the segmented organ, with coloured contours.

Planes are shown in the radiological convention (patient right on the image's left, anterior and superior
up) after reorienting to the closest RAS axes, with square millimetres, so any stored orientation looks
the same. Drawn with Pillow, headless.
"""

import numpy as np
from nibabel import orientations as nio
from PIL import Image, ImageDraw
from scipy import ndimage

from keras_cdseg.io_utils import atomic_path

PANEL_HEIGHT_PX = 256
_GAP_PX = 4
_CAPTION_PX = 14
CLASS_RGB = ((255, 60, 60), (60, 160, 255), (255, 220, 0), (0, 220, 120), (220, 80, 255), (255, 140, 0))


def preview_planes(image, labels, affine):
    """The three display planes `[(name, grey [rows, cols], labels [rows, cols], (row_mm, col_mm))]`.

    Planes cross the centre of mass of the foreground (the volume centre if there is none).
    """
    orientation = nio.io_orientation(np.asarray(affine)).astype(int)
    image_ras = nio.apply_orientation(np.asarray(image), orientation)
    labels_ras = nio.apply_orientation(np.asarray(labels), orientation)
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    spacing_ras = np.empty(3)
    for in_axis, (out_axis, _) in enumerate(orientation):
        spacing_ras[out_axis] = spacing[in_axis]
    if labels_ras.any():
        centre = [int(round(c)) for c in ndimage.center_of_mass(labels_ras > 0)]
    else:
        centre = [n // 2 for n in labels_ras.shape]
    x, y, z = centre
    # Reversing x puts patient right on the left; reversing y/z puts anterior/superior at the top.
    return [
        ("axial", image_ras[::-1, ::-1, z].T, labels_ras[::-1, ::-1, z].T, (spacing_ras[1], spacing_ras[0])),
        ("coronal", image_ras[::-1, y, ::-1].T, labels_ras[::-1, y, ::-1].T, (spacing_ras[2], spacing_ras[0])),
        ("sagittal", image_ras[x, ::-1, ::-1].T, labels_ras[x, ::-1, ::-1].T, (spacing_ras[2], spacing_ras[1])),
    ]


def render_preview(image, labels, affine, class_names=None, title=""):
    """An RGB uint8 array: the three planes side by side, grey image, one contour colour per class."""
    low, high = np.percentile(np.asarray(image, dtype=np.float32), (1, 99))
    panels = []
    for name, grey, plane_labels, (row_mm, col_mm) in preview_planes(image, labels, affine):
        rows, cols = grey.shape
        height = PANEL_HEIGHT_PX
        width = max(1, int(round(height * (cols * col_mm) / max(rows * row_mm, 1e-6))))
        scaled = np.clip((grey.astype(np.float32) - low) / max(high - low, 1e-6), 0, 1) * 255
        grey_img = Image.fromarray(scaled.astype(np.uint8)).resize((width, height), Image.BILINEAR)
        label_img = np.asarray(Image.fromarray(plane_labels.astype(np.uint8)).resize((width, height), Image.NEAREST))
        rgb = np.repeat(np.asarray(grey_img)[..., None], 3, axis=2).copy()
        for value in (v for v in np.unique(label_img) if v):
            mask = label_img == value
            rgb[mask & ~ndimage.binary_erosion(mask, border_value=0)] = CLASS_RGB[(value - 1) % len(CLASS_RGB)]
        panels.append((name, rgb))
    total_width = sum(p.shape[1] for _, p in panels) + _GAP_PX * (len(panels) - 1)
    canvas = Image.new("RGB", (total_width, PANEL_HEIGHT_PX + 2 * _CAPTION_PX), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    left = 0
    for name, rgb in panels:
        canvas.paste(Image.fromarray(rgb), (left, _CAPTION_PX))
        draw.text((left + 2, 1), name, fill=(255, 255, 255))
        left += rgb.shape[1] + _GAP_PX
    present = np.flatnonzero(np.bincount(np.asarray(labels, dtype=np.uint8).ravel(), minlength=1))
    legend = "  ".join(str(class_names[v] if class_names and v < len(class_names) else v) for v in present if v)
    draw.text((2, PANEL_HEIGHT_PX + _CAPTION_PX + 1), f"{title}  {legend}".strip(), fill=(255, 255, 255))
    return np.asarray(canvas)


def save_preview(path, image, labels, affine, class_names=None, title=""):
    """Writes `render_preview(...)` as a PNG atomically."""
    rgb = render_preview(image, labels, affine, class_names, title)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
