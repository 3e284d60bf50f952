"""Organs the network's in-plane window cut off.

The network sees a fixed window of `image_size` pixels at `target_spacing_mm` (the bundled model: 128 × 2.5 mm =
320 mm), centred on the scan. A scan wider than that is cropped to it, and every voxel outside is labelled
background: an organ that reaches past the window is cut at its edge without any sign in its volume or shape.
Large patients are common: of the benchmark's 20 BTCV CT (fields of view 267-439 mm), the reference
segmentations of four reach outside the central 320 mm, btcv_ct_04's liver by 5 % of its voxels (Dice at most
0.972 however well the network does). An organ on a cropped edge of the window continues outside; how much is
estimated from how its cross-section shrinks towards the edge, and `organ_cut_by_window` (anatomy.py) warns when
that is a share of the organ a Dice score would notice.
"""

import numpy as np

from keras_cdseg.data.preprocessing import canonical_slices


# An organ is reported cut when the part estimated outside the window is at least this share of what was
# segmented: a Dice ceiling near 0.99. Smaller cuts are common and cost little (of the 20 BTCV CT, btcv_ct_16's
# reference liver has 0.04 % outside, btcv_ct_25's 0.7 %; btcv_ct_04's 5 %).
MIN_CUT_FRACTION = 0.02
# How far inside the edge the organ's cross-section is compared with its cross-section on the edge.
TAPER_DEPTH_MM = 10.0


def window_cuts(labels, geometry, class_labels):
    """`{name: {"edge_mm2", "outside_ml"}}` for every foreground class, or None if the window holds the whole scan.

    `edge_mm2` is the organ's cross-section on the window's cropped edges; `outside_ml` estimates what lies past
    them: on each edge the cross-section is extrapolated outwards along its slope over the last `TAPER_DEPTH_MM`
    inside (to zero, as an organ's end tapers; constant where it does not shrink towards the edge) and stops at
    the scan's own edge. On the reference segmentations of the four BTCV CT the bundled model's window cuts, it
    gives 197 mL against 126 mL outside (btcv_ct_04's liver), 1.1 against 1.1 (btcv_ct_16's liver), 19.0
    against 16.8 and 2.9 against 1.9 (btcv_ct_25's liver and spleen), 1.6 against 1.6 (btcv_ct_27's spleen).

    Args:
        labels: the label map written for the input (its own axis order and grid).
        geometry: the `VolumeGeometry` it was prepared with (`VolumePrediction.geometry`).
        class_labels: dict name -> value; background (0) is skipped.
    """
    cropped = [axis for axis in (0, 1) if geometry.pad_offsets[axis] < 0]
    if not cropped:
        return None
    slices = canonical_slices(np.asarray(labels), geometry)  # [S, n0, n1]
    spacing = geometry.canonical_spacing_mm
    size = max([int(v) for v in class_labels.values()] + [0]) + 1
    edge_mm2, outside_mm3 = np.zeros(size), np.zeros(size)
    for axis in cropped:
        coords = geometry.window_coords(axis)
        labelled = np.nonzero((coords >= -0.5) & (coords < geometry.image_size - 0.5))[0]  # nearest pixel inside
        face_mm2 = spacing[1 - axis] * spacing[2]
        steps = min(max(1, int(round(TAPER_DEPTH_MM / spacing[axis]))), len(labelled) - 1)
        for edge, inwards, beyond in ((labelled[0], 1, labelled[0]), (labelled[-1], -1, len(coords) - 1 - labelled[-1])):
            on_edge = _areas(slices, axis, edge, size) * face_mm2
            inside = _areas(slices, axis, edge + inwards * steps, size) * face_mm2
            shrink_per_mm = (inside - on_edge) / max(steps * spacing[axis], 1e-6)
            with np.errstate(divide="ignore", invalid="ignore"):
                taper_mm = np.where(shrink_per_mm > 0, on_edge / shrink_per_mm, np.inf)
                reach_mm = np.minimum(taper_mm, beyond * spacing[axis])
                outside = np.where(on_edge > 0, on_edge * reach_mm * (1 - reach_mm / (2 * taper_mm)), 0.0)
            edge_mm2 += on_edge
            outside_mm3 += outside
    return {name: {"edge_mm2": round(float(edge_mm2[int(v)]), 1), "outside_ml": round(float(outside_mm3[int(v)]) / 1000, 2)}
            for name, v in class_labels.items() if int(v) != 0}  # fmt: skip


def _areas(slices, axis, index, size):
    """Voxel count per class on one plane of the slice-first canonical view across in-plane `axis`."""
    plane = slices[:, index, :] if axis == 0 else slices[:, :, index]  # a view: np.take would copy the volume
    return np.bincount(plane.reshape(-1), minlength=size)[:size].astype(np.float64)


def window_description(geometry):
    """`{"window_mm", "field_of_view_mm"}`: the window's width and the scan's in-plane extent (RAS x, y)."""
    return {
        "window_mm": round(geometry.image_size * geometry.target_spacing_mm, 1),
        "field_of_view_mm": [round(n * s, 1) for n, s in zip(geometry.canonical_shape[:2], geometry.canonical_spacing_mm[:2])],
    }
