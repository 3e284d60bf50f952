"""Organs cut by the network's in-plane window: found on a scan wider than the window, with what lies outside
estimated and named in a warning; nothing from a scan the window holds, an organ inside it, or a tip touching it."""

from pathlib import Path

import numpy as np
import pytest

from keras_cdseg.config import DataConfig
from keras_cdseg.data import nifti_io
from keras_cdseg.data.nifti_io import Volume
from keras_cdseg.data.preprocessing import volume_geometry
from keras_cdseg.inference.quality.anatomy import anatomy_warnings, organ_summary
from keras_cdseg.inference.quality.field_of_view import window_cuts

LABELS = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}
CONFIG = DataConfig(image_size=128, target_spacing_mm=2.5)  # a 320 mm window, as the bundled model's
REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "abdomen_ct_mr" / "ct"


def scan(width_px, spacing_mm=2.0, num_slices=6):
    """An LPS-ordered scan (x grows to the patient's left) `width_px` wide, the organs' label map beside it."""
    affine = np.diag([-spacing_mm, -spacing_mm, 3.0, 1.0])
    return Volume(np.zeros((width_px, width_px, num_slices), np.float32), affine), np.zeros((width_px, width_px, num_slices), np.uint8)


def cut_codes(labels, image):
    geometry = volume_geometry(image, CONFIG)
    organs = organ_summary(labels, image.affine, LABELS, geometry)
    return organs, [w for w in anatomy_warnings(organs) if w["code"] == "organ_cut_by_window"]


def test_an_organ_past_the_window_of_a_wide_scan_is_named_with_what_lies_outside():
    image, labels = scan(200)  # 400 mm: the 320 mm window drops 40 mm (20 voxels) on each side
    labels[0:70, 60:120, 1:5] = 1  # from the scan's edge to well inside, not tapering: 20 x 60 x 4 voxels outside
    labels[90:110, 90:110, 1:5] = 4  # central
    organs, warnings = cut_codes(labels, image)
    assert organs["liver"]["window_edge"] == {"edge_mm2": 60 * 4 * 2.0 * 3.0, "outside_ml": 20 * 60 * 4 * 12 / 1000,
                                              "window_mm": 320.0, "field_of_view_mm": [400.0, 400.0]}  # fmt: skip
    assert "window_edge" not in organs["spleen"]
    assert [w["level"] for w in warnings] == ["review"]
    assert warnings[0]["reason"] == ("the scan (400 x 400 mm) is wider than the model's 320 mm window and cuts off "
                                     "part of the liver (about 58 mL, 29 %): not segmented")  # fmt: skip


def test_a_scan_the_window_holds_and_organs_inside_it_raise_nothing():
    image, labels = scan(150)  # 300 mm: padded, not cropped, even with an organ on the scan's own edge
    labels[0:40, 40:80, :] = 1
    assert window_cuts(labels, volume_geometry(image, CONFIG), LABELS) is None
    assert cut_codes(labels, image)[1] == []
    wide, wide_labels = scan(200)
    wide_labels[30:170, 30:170, 2:4] = 1  # 60-340 mm of 400: inside the window's 40-360 mm
    organs, warnings = cut_codes(wide_labels, wide)
    assert "window_edge" not in organs["liver"] and warnings == []


def test_an_organ_tapering_to_the_edge_is_reported_but_not_warned():
    image, labels = scan(200)
    labels[60:140, 60:140, 1:5] = 1
    for column in range(20, 30):  # a tip shrinking towards the window's edge (column 20): 1 voxel there, 6 at 25
        labels[column, 100 - (column - 19) // 2: 101 + (column - 20) // 2, 2] = 1
    organs, warnings = cut_codes(labels, image)
    edge = organs["liver"]["window_edge"]
    assert edge["edge_mm2"] == 6.0 and edge["outside_ml"] == 0.01 and warnings == []  # 6 mm³: a 2 mm taper


@pytest.mark.skipif(not (REAL / "labels").is_dir(), reason=f"real scans not found at {REAL.resolve()}")
def test_the_reference_liver_of_the_widest_btcv_patient_is_cut_and_small_cuts_pass():
    """btcv_ct_04 (408 mm): 126 mL of its reference liver lie outside the central 320 mm; btcv_ct_25 (336 mm):
    17 mL of 2503 (0.7 %); btcv_ct_03 (267 mm) is held whole."""
    expected = {"btcv_ct_04": (["liver"], 1), "btcv_ct_25": (["liver", "spleen"], 0), "btcv_ct_03": ([], 0)}
    for case, (on_edge, num_warnings) in expected.items():
        image = nifti_io.load_image(REAL / "images" / f"{case}.nii.gz")
        label = nifti_io.load_label(REAL / "labels" / f"{case}.nii.gz")
        organs, warnings = cut_codes(np.asarray(label.data), image)
        assert [name for name, organ in organs.items() if "window_edge" in organ] == on_edge
        assert len(warnings) == num_warnings
    assert 150 < organs_liver_outside_ml("btcv_ct_04") < 250  # 197 mL estimated against 126 mL


def organs_liver_outside_ml(case):
    image = nifti_io.load_image(REAL / "images" / f"{case}.nii.gz")
    label = nifti_io.load_label(REAL / "labels" / f"{case}.nii.gz")
    return window_cuts(np.asarray(label.data), volume_geometry(image, CONFIG), LABELS)["liver"]["outside_ml"]
