"""Renders an `Anatomy` into a tissue map on an axis-aligned grid (anatomy coordinates, mm).

Structures are painted in a fixed order, each only over the tissues it may displace (`over`): fixed
structures first (body wall, spine, vessels, lungs, ribs), then organs only into visceral fat (and bowel),
with later organs allowed over earlier ones where real organs indent each other (spleen and kidneys over
liver). Overlapping shapes therefore end up sharing a boundary: organs touch without gaps or overlaps.
Local structures are evaluated only in their bounding box, so cost follows organ size, not grid size.
"""

import math

import numpy as np

from keras_cdseg.data.phantoms.anatomy import LIVER_TISSUES, NUM_TISSUES, TISSUE
from keras_cdseg.data.phantoms.shapes import smooth_union, union_bounds

T = TISSUE
_ABDOMINAL_SPACE = ("visceral_fat", "bowel", "gi_fluid", "gi_air", "stomach_wall")
_LIVER_SPACE = ("visceral_fat", "bowel")  # the stomach indents the left lobe, not vice versa


class _Canvas:
    def __init__(self, x_mm, y_mm, z_mm):
        self.axes = [np.asarray(a, dtype=np.float32) for a in (x_mm, y_mm, z_mm)]
        self.tissue = np.full([len(a) for a in self.axes], T["air"], dtype=np.uint8)

    def window(self, low_mm, high_mm):
        """Index slices and broadcast coordinates of the grid part inside a world box; None if empty."""
        slices, coords = [], []
        for axis, (lo, hi) in enumerate(zip(low_mm, high_mm)):
            values = self.axes[axis]
            start, stop = np.searchsorted(values, lo), np.searchsorted(values, hi, side="right")
            if start >= stop:
                return None
            slices.append(slice(int(start), int(stop)))
            shape = [1, 1, 1]
            shape[axis] = stop - start
            coords.append(values[start:stop].reshape(shape))
        return tuple(slices), coords

    def paint(self, name, mask, slices=(slice(None),) * 3, over=None):
        sub = self.tissue[slices]
        mask = np.broadcast_to(mask, sub.shape)
        if over is not None:
            allowed = np.zeros(NUM_TISSUES, dtype=bool)
            allowed[[T[o] for o in over]] = True
            mask = mask & allowed[sub]
        sub[mask] = T[name]

    def grid_coords(self):
        x, y, z = self.axes
        return x[:, None, None], y[None, :, None], z[None, None, :]


def _superellipse(x, y, a, b_ant, b_post, exponent):
    """Normalised radius of the body outline (y may be 2D-broadcast)."""
    b = np.where(y > 0, b_ant, b_post)
    return (np.abs(x / a) ** exponent + np.abs(y / b) ** exponent) ** (1.0 / exponent)


def paint_tissues(anatomy, x_mm, y_mm, z_mm):
    """The tissue map (uint8, values of `TISSUE`) of `anatomy` sampled at the given axis coordinates.

    Args:
        anatomy: Anatomy.
        x_mm, y_mm, z_mm: 1D increasing arrays. Anatomy coordinates of the grid's voxel centres along the
            three array axes (x towards the patient's right).

    Returns:
        np.ndarray uint8 of shape (len(x_mm), len(y_mm), len(z_mm)).
    """
    canvas = _Canvas(x_mm, y_mm, z_mm)
    _paint_body(canvas, anatomy)
    _paint_spine_and_vessels(canvas, anatomy)
    _paint_thorax(canvas, anatomy)
    _paint_gut(canvas, anatomy)
    _paint_liver(canvas, anatomy)
    _paint_blobs(canvas, anatomy.organs["gallbladder"], "gallbladder", over=("visceral_fat",) + _names(LIVER_TISSUES))
    _paint_blobs(canvas, anatomy.organs["spleen"], "spleen", over=_ABDOMINAL_SPACE + _names(LIVER_TISSUES))
    _paint_kidneys(canvas, anatomy)
    return canvas.tissue


def _names(values):
    return tuple(name for name, v in T.items() if v in values)


def _paint_body(canvas, anatomy):
    body = anatomy.body
    x, y, z = canvas.grid_coords()
    x2, y2 = x[:, :, 0], y[:, :, 0]
    # A slow change of girth along z; the same factor scales every contour so layers stay nested.
    girth = 1.0 + body["z_amplitude"] * np.sin(2 * np.pi * z / body["z_wavelength_mm"] + body["z_phase"])
    a, b_ant, b_post, p = body["a"], body["b_ant"], body["b_post"], body["exponent"]
    fat, fat_post, muscle = body["fat_mm"], body["fat_post_mm"], body["muscle_mm"]
    outer = _superellipse(x2, y2, a, b_ant, b_post, p)[:, :, None]
    inner_fat = _superellipse(x2, y2, a - fat, b_ant - fat, b_post - fat_post, p)[:, :, None]
    cavity = _superellipse(x2, y2, a - fat - muscle, b_ant - fat - muscle, b_post - fat_post - muscle, p)
    canvas.paint("fat", outer < girth)
    canvas.paint("muscle", inner_fat < girth)
    canvas.paint("visceral_fat", cavity[:, :, None] < girth)

    table = anatomy.extras["table"]
    top = -b_post * (1 + body["z_amplitude"]) - table["gap_mm"] + table["curvature"] * x2**2
    canvas.paint("table", ((y2 < top) & (y2 > top - table["thickness_mm"]) & (np.abs(x2) < 230))[:, :, None])

    # Paraspinal muscles: two masses behind the spine, clipped to the subcutaneous fat's inner contour.
    para = anatomy.extras["paraspinal"]
    for sign in (1.0, -1.0):
        rx, ry = para["radii_mm"]
        ellipse = ((x2 - sign * para["x_mm"]) / rx) ** 2 + ((y2 - para["y_mm"]) / ry) ** 2
        canvas.paint("muscle", ((ellipse < 1) & (inner_fat[:, :, 0] < 1.0))[:, :, None], over=("visceral_fat", "fat"))

    # Ribs: hoops that descend from the spine towards the front, so an axial slice cuts several short arcs
    # in the inner muscle wall; only above the costal margin (which is lower at the back).
    ribs = anatomy.extras["ribs"]
    cavity_a = a - fat - muscle
    band = (cavity > 1 - 3.0 / cavity_a) & (cavity < 1 + 6.0 / cavity_a) & (inner_fat[:, :, 0] < 1.0)
    around = np.arctan2(np.abs(x2), -y2) / np.pi  # 0 at the spine, 1 at the front midline
    band &= (around > 0.12) & (around < 0.85)
    ii, jj = np.nonzero(band)
    if ii.size:
        i0, i1, j0, j1 = ii.min(), ii.max() + 1, jj.min(), jj.max() + 1
        phase = (z - ribs["phase_mm"] + ribs["drop_mm"] * around[i0:i1, j0:j1, None]) / ribs["period_mm"]
        y_frac = np.clip(-y2[:, j0:j1, None] / b_post, 0, 1)
        costal_z = ribs["costal_z_ant_mm"] + (ribs["costal_z_post_mm"] - ribs["costal_z_ant_mm"]) * y_frac
        window = (slice(i0, i1), slice(j0, j1), slice(None))
        wave = np.cos(2 * np.pi * phase)
        rib = band[i0:i1, j0:j1, None] & (wave > 0.6) & (z > costal_z)
        canvas.paint("bone_cortex", rib, window, over=("muscle", "visceral_fat"))
        # Fatty marrow in the middle of each rib (bright on T1, as in real MR).
        mid_band = np.abs(cavity[i0:i1, j0:j1, None] - 1 - 1.5 / cavity_a) < 1.5 / cavity_a
        canvas.paint("bone_marrow", rib & (wave > 0.85) & mid_band, window)


def _paint_spine_and_vessels(canvas, anatomy):
    spine, vessels = anatomy.spine, anatomy.vessels
    x, y, z = canvas.grid_coords()
    x2, y2 = x[:, :, 0], y[:, :, 0]
    period = spine["disc_period_mm"]
    level = np.mod(z - spine["phase_mm"], period) / period  # 0..1 within one vertebra + disc
    disc = level < spine["disc_mm"] / period
    arch = (level > 0.35) & (level < 0.85)
    processes = (level > 0.45) & (level < 0.7)

    body = ((x2 / spine["rx"]) ** 2 + ((y2 - spine["y_body"]) / spine["ry"]) ** 2)[:, :, None]
    shrink = (1 - spine["cortex_mm"] / spine["ry"]) ** 2
    canvas.paint("bone_cortex", (body < 1) & ~disc)
    canvas.paint("bone_marrow", (body < shrink) & ~disc)
    canvas.paint("disc", (body < 1) & disc)
    y_canal = spine["y_body"] - spine["ry"] - spine["canal_r"] - 2
    canal = ((x2 / spine["canal_r"]) ** 2 + ((y2 - y_canal) / (0.9 * spine["canal_r"])) ** 2)[:, :, None]
    canvas.paint("bone_cortex", (canal < ((spine["canal_r"] + 5) / spine["canal_r"]) ** 2) & arch)
    spinous = ((x2 / 5.0) ** 2 + ((y2 - y_canal + spine["canal_r"] + 18) / 18.0) ** 2)[:, :, None]
    canvas.paint("bone_cortex", (spinous < 1) & processes)
    for sign in (1.0, -1.0):
        transverse = (((x2 - sign * 28) / 16.0) ** 2 + ((y2 - y_canal - 3) / 5.0) ** 2)[:, :, None]
        canvas.paint("bone_cortex", (transverse < 1) & processes, over=("muscle", "visceral_fat", "fat"))
    canvas.paint("csf", canal < 1)

    ax, ay = vessels["aorta"]
    canvas.paint("aorta", (((x2 - ax) ** 2 + (y2 - ay) ** 2) < vessels["aorta_r"] ** 2)[:, :, None])
    (ix, iy), (irx, iry) = vessels["ivc"], vessels["ivc_r"]
    canvas.paint("ivc", ((((x2 - ix) / irx) ** 2 + ((y2 - iy) / iry) ** 2) < 1)[:, :, None], over=("visceral_fat",))

    psoas = anatomy.extras["psoas"]
    radius = np.maximum(psoas["radius_mm"] + psoas["growth_per_mm"] * (psoas["z_start_mm"] - z), 0.0)
    radius = np.minimum(radius, 28.0)
    for sign in (1.0, -1.0):
        inside = ((x - sign * psoas["x_mm"]) ** 2 + ((y - psoas["y_mm"]) * 1.2) ** 2) < radius**2
        canvas.paint("muscle", inside & (z < psoas["z_start_mm"]), over=("visceral_fat",))


def _diaphragm_height(anatomy, x2, y2):
    """z of the diaphragm surface above each (x, y): the smooth maximum of two domes."""
    d = anatomy.diaphragm
    heights = []
    for cx, cy, top in (d["right"], d["left"]):
        dy = y2 - cy
        drop_y = np.where(dy < 0, d["drop_posterior_mm"], d["drop_anterior_mm"]) * (dy / 90.0) ** 2
        heights.append(top - d["drop_lateral_mm"] * ((x2 - cx) / 80.0) ** 2 - drop_y)
    k = 15.0  # mm of blending between the domes: a saddle, not a crease, over the central tendon
    return k * np.logaddexp(heights[0] / k, heights[1] / k)


def _paint_thorax(canvas, anatomy):
    x, y, z = canvas.grid_coords()
    dome = _diaphragm_height(anatomy, x[:, :, 0], y[:, :, 0])[:, :, None]
    canvas.paint("lung", z > dome, over=("visceral_fat",))
    canvas.paint("muscle", (z <= dome) & (z > dome - anatomy.diaphragm["thickness_mm"]), over=("visceral_fat",))
    _paint_blobs(canvas, anatomy.organs["heart"], "heart", over=("lung",))


def _paint_blobs(canvas, blobs, name, over, smoothness=0.1):
    """Paints the smooth union of `blobs`; returns (slices, coords, radius field) or None if off-grid."""
    if not blobs:
        return None
    window = canvas.window(*union_bounds(blobs))
    if window is None:
        return None
    slices, (x, y, z) = window
    field = smooth_union(_blob_fields(blobs, x, y, z), smoothness)
    canvas.paint(name, field < 1, slices, over=over)
    return slices, (x, y, z), field


def _blob_fields(blobs, x, y, z):
    """Each blob's radius field on the window, computed only inside the blob's own box: outside it r is
    known to exceed 1.2, and a constant there leaves the smooth union unchanged. A warp shared by several
    blobs (the liver's lobes) is evaluated once on the whole window."""
    shape = (x.size, y.size, z.size)
    warp_users = {}
    for blob in blobs:
        if blob.warp is not None:
            warp_users[id(blob.warp)] = warp_users.get(id(blob.warp), 0) + 1
    shared = {}
    fields = []
    for blob in blobs:
        low, high = blob.bounds_mm()
        own = tuple(
            slice(int(np.searchsorted(c.ravel(), lo)), int(np.searchsorted(c.ravel(), hi, side="right")))
            for c, lo, hi in zip((x, y, z), low, high)
        )
        bx, by, bz = x[own[0]], y[:, own[1]], z[:, :, own[2]]
        warp = None
        if blob.warp is not None and warp_users[id(blob.warp)] > 1:
            if id(blob.warp) not in shared:
                shared[id(blob.warp)] = [np.broadcast_to(c, shape) for c in blob.warp.components(x, y, z)]
            warp = [c[own] for c in shared[id(blob.warp)]]
        field = np.full(shape, 10.0, dtype=np.float32)
        field[own] = blob.radius_field(bx, by, bz, warp_components=warp)
        fields.append(field)
    return fields


def _paint_gut(canvas, anatomy):
    for blob, content in anatomy.bowel:
        painted = _paint_blobs(canvas, (blob,), "bowel", over=("visceral_fat",))
        if painted is not None and content != "collapsed":
            slices, _, field = painted
            canvas.paint("gi_fluid" if content == "fluid" else "gi_air", field < 0.75, slices, over=("bowel",))
    painted = _paint_blobs(canvas, anatomy.organs["stomach"], "stomach_wall", over=("visceral_fat", "bowel"))
    if painted is not None:
        slices, (x, y, z), field = painted
        blob = anatomy.organs["stomach"][0]
        wall = 4.0 / min(blob.radii_mm)
        canvas.paint("gi_fluid", field < 1 - wall, slices, over=("stomach_wall",))
        # Supine patient: gas rises anteriorly (+y) above a level.
        level = blob.center_mm[1] + anatomy.extras["stomach_air_level"] * blob.radii_mm[1]
        canvas.paint("gi_air", (field < 1 - wall) & (y > level), slices, over=("gi_fluid",))


def _paint_liver(canvas, anatomy):
    painted = _paint_blobs(canvas, anatomy.organs["liver"], "liver", over=_LIVER_SPACE, smoothness=0.12)
    if painted is None:
        return
    slices, (x, y, z), _ = painted
    # Vessels: the common zero set of two smooth fields is a network of curves; thickening it by a radius
    # that grows towards the hilum gives portal/hepatic-vein-like trees. Evaluated only at liver voxels.
    sub = canvas.tissue[slices]
    ii, jj, kk = np.nonzero(sub == T["liver"])
    if ii.size:
        px, py, pz = x[ii, 0, 0], y[0, jj, 0], z[0, 0, kk]
        vessels = anatomy.liver_vessels
        g1, g2 = (f.values_at(px, py, pz) for f in vessels["fields"])
        hx, hy, hz = vessels["hilum_mm"]
        near_hilum = np.exp(-((px - hx) ** 2 + (py - hy) ** 2 + (pz - hz) ** 2) / (2 * vessels["hilum_spread_mm"] ** 2))
        radius = vessels["radius_mm"] + vessels["hilum_radius_mm"] * near_hilum
        is_vessel = g1 * g1 + g2 * g2 < radius * radius
        sub[ii[is_vessel], jj[is_vessel], kk[is_vessel]] = T["liver_vessel"]
    for lesion in anatomy.organs["lesions"]:
        _paint_blobs(canvas, (lesion,), "liver_lesion", over=("liver", "liver_vessel"))


def _paint_kidneys(canvas, anatomy):
    over = _ABDOMINAL_SPACE + _names(LIVER_TISSUES) + ("spleen",)
    for side, medial_sign in (("right", -1.0), ("left", 1.0)):
        painted = _paint_blobs(canvas, anatomy.organs[f"kidney_{side}"], "kidney_cortex", over=over)
        if painted is None:
            continue
        slices, (x, _, _), field = painted
        blob = anatomy.organs[f"kidney_{side}"][0]
        canvas.paint("kidney_medulla", field < 0.72, slices, over=("kidney_cortex",))
        # Renal sinus: fat opening medially at the hilum.
        medial = (x - blob.center_mm[0]) * medial_sign > 0.35 * blob.radii_mm[0]
        canvas.paint("visceral_fat", (field < 0.62) & medial, slices, over=("kidney_medulla",))
        canvas.paint("visceral_fat", (field < 1.0) & ((x - blob.center_mm[0]) * medial_sign > 0.8 * blob.radii_mm[0]),
                     slices, over=("kidney_cortex",))  # fmt: skip


def organ_volumes_ml(tissue, spacing_mm):
    """Volume (ml) of each tissue present in a tissue map."""
    voxel_ml = math.prod(spacing_mm) / 1000.0
    counts = np.bincount(tissue.ravel(), minlength=NUM_TISSUES)
    return {name: float(counts[v] * voxel_ml) for name, v in T.items() if counts[v]}
