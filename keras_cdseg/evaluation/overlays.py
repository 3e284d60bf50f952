"""Overlay PNGs: reference (green) and predicted (red) contours on the worst, median and best slice.

Drawn with Pillow (a dependency), headless, so reports can be produced on servers without a display.
"""

import numpy as np
from PIL import Image, ImageDraw

from keras_cdseg.io_utils import atomic_path
from keras_cdseg.metrics import compute_border

REFERENCE_RGB = (0, 220, 0)
PREDICTION_RGB = (255, 40, 40)
BOTH_RGB = (255, 230, 0)
_CAPTION_PX = 14
_MIN_PANEL_PX = 256
_GAP_PX = 4


def pick_slices(mask_gt, mask_pred):
    """Axial (last-axis) slices with the worst, median and best per-slice Dice among slices showing either mask.

    Returns:
        A list of `(name, slice_index, dice)` for "worst", "median", "best". With no foreground anywhere, the
        middle slice (Dice 1.0 by the both-empty policy) is returned three times.
    """
    sum_gt = mask_gt.sum(axis=(0, 1))
    sum_pred = mask_pred.sum(axis=(0, 1))
    intersection = (mask_gt & mask_pred).sum(axis=(0, 1))
    candidates = np.flatnonzero(sum_gt + sum_pred)
    if candidates.size == 0:
        middle = mask_gt.shape[2] // 2
        return [(name, middle, 1.0) for name in ("worst", "median", "best")]
    dice = 2.0 * intersection[candidates] / (sum_gt[candidates] + sum_pred[candidates])
    order = np.argsort(dice, kind="stable")
    picks = (("worst", order[0]), ("median", order[len(order) // 2]), ("best", order[-1]))
    return [(name, int(candidates[i]), float(dice[i])) for name, i in picks]


def render_slice(mask_gt, mask_pred, image=None):
    """An RGB uint8 array of one 2D slice: grey image (or a faint reference fill) with both contours."""
    if image is not None:
        low, high = np.percentile(image, (1, 99))
        grey = np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 200
    else:
        grey = np.where(mask_gt, 70.0, 20.0)
    rgb = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    contour_gt = compute_border(mask_gt) if mask_gt.any() else np.zeros_like(mask_gt)
    contour_pred = compute_border(mask_pred) if mask_pred.any() else np.zeros_like(mask_pred)
    rgb[contour_gt] = REFERENCE_RGB
    rgb[contour_pred] = PREDICTION_RGB
    rgb[contour_gt & contour_pred] = BOTH_RGB
    return rgb


def save_case_overlay(path, labels_gt, labels_pred, class_value, spacing_mm, image=None, title="", affine=None):
    """Writes a PNG with three panels (worst, median, best slice of class `class_value`) atomically.

    Args:
        path: output .png path.
        labels_gt, labels_pred: integer label maps of the same 2D or 3D shape; slices are taken on the last
            axis (axial for RAS-oriented NIfTI).
        class_value: int. The class whose contours are drawn and whose Dice picks the slices.
        spacing_mm: voxel size; panels are stretched so pixels are square in millimetres.
        image: intensity array of the same shape or None.
        title: str. Printed above the panels (e.g. the case id).
        affine: 4x4 voxel-to-world array or None. If given (3D only), the volumes are flipped/transposed to
            RAS first, so every case is shown in the same radiological view whatever its storage order.
    """
    mask_gt = np.asarray(labels_gt) == class_value
    mask_pred = np.asarray(labels_pred) == class_value
    # Captions give slice numbers in the file's own voxel order, as viewers and the label file use them.
    file_axis, file_index = 2, list(range(mask_gt.shape[-1]))
    if affine is not None and mask_gt.ndim == 3:
        mask_gt, mask_pred, image, spacing_mm, file_axis, file_index = _to_ras(
            mask_gt, mask_pred, image, spacing_mm, affine
        )
    if mask_gt.ndim == 2:
        mask_gt, mask_pred = mask_gt[..., None], mask_pred[..., None]
        image = None if image is None else np.asarray(image)[..., None]
    panels = []
    for name, index, dice in pick_slices(mask_gt, mask_pred):
        slice_image = None if image is None else np.asarray(image[..., index], dtype=np.float32)
        rgb = render_slice(mask_gt[..., index], mask_pred[..., index], slice_image)
        # First array axis horizontal and reversed, second vertical with high indices on top: for RAS volumes
        # the radiological view (patient's right on the image's left, anterior up).
        panel = Image.fromarray(np.ascontiguousarray(np.rot90(rgb)[:, ::-1]))
        where = f"slice {file_index[index]}" + (f" (axis {file_axis})" if file_axis != 2 else "")
        panels.append((_resize(panel, spacing_mm), f"{name}: {where}, Dice {dice:.3f}"))
    width = sum(p.width for p, _ in panels) + _GAP_PX * (len(panels) - 1)
    height = max(p.height for p, _ in panels) + 2 * _CAPTION_PX + 4
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), f"{title}  green: reference  red: prediction  yellow: both", fill=(255, 255, 255))
    x = 0
    for panel, caption in panels:
        canvas.paste(panel, (x, 2 * _CAPTION_PX + 4))
        draw.text((x + 4, _CAPTION_PX + 2), caption, fill=(255, 255, 255))
        x += panel.width + _GAP_PX
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def _to_ras(mask_gt, mask_pred, image, spacing_mm, affine):
    import nibabel.orientations as orientations

    transform = orientations.ornt_transform(
        orientations.io_orientation(np.asarray(affine)), orientations.axcodes2ornt("RAS")
    )
    ras_spacing = [0.0] * 3
    for axis, (new_axis, _) in enumerate(transform):
        ras_spacing[int(new_axis)] = float(spacing_mm[axis])
    arrays = [None if a is None else orientations.apply_orientation(np.asarray(a), transform)
              for a in (mask_gt, mask_pred, image)]
    # The file axis that became the superior (axial) axis, and the file index of each RAS slice.
    file_axis = int(np.flatnonzero(transform[:, 0] == 2)[0])
    file_index = list(range(mask_gt.shape[file_axis]))
    if transform[file_axis, 1] < 0:
        file_index.reverse()
    return (*arrays, tuple(ras_spacing), file_axis, file_index)


def _resize(panel, spacing_mm):
    # After rot90, width follows array axis 0 and height array axis 1.
    width_mm = panel.width * float(spacing_mm[0])
    height_mm = panel.height * float(spacing_mm[1])
    scale = max(_MIN_PANEL_PX / max(width_mm, height_mm), 1.0 / min(spacing_mm[0], spacing_mm[1]))
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    return panel.resize(size, Image.NEAREST)
