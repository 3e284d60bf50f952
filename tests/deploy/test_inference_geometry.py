"""Predictions land on exactly the input grid, whatever the stored orientation, obliquity and spacing.

The network is replaced by a threshold (a real, exactly equivariant predictor), so the expected output is
known voxel by voxel: the ellipsoid drawn in world coordinates.
"""

import nibabel as nib
import numpy as np
import pytest
from deploy_fixtures import affine_for, blob_image, make_threshold_predictor, threshold_card, write_nifti

from keras_cdseg.data.nifti_io import Volume, load_image
from keras_cdseg.data.preprocessing import prepare_volume, restore_labels
from keras_cdseg.deploy.predict import predict_cases
from keras_cdseg.inference.volume import predict_volume, segment_volume

# name: (axcodes, spacing_mm, shape, rotation_deg, target_spacing_mm). In-plane spacings are the target or
# half of it, so preparation resamples by exact integer factors and the expected output is exact.
EXACT_GRIDS = {
    "RAS": ("RAS", (4.0, 4.0, 5.0), (20, 18, 8), 0.0, 4.0),
    "LPS": ("LPS", (4.0, 4.0, 5.0), (18, 20, 8), 0.0, 4.0),
    "oblique": ("LAS", (4.0, 4.0, 5.0), (20, 20, 8), 17.0, 4.0),
    "permuted_anisotropic": ("ASR", (2.0, 5.0, 4.0), (28, 8, 12), 0.0, 2.0),
}


def _case(name):
    axcodes, spacing_mm, shape, rotation_deg, target_spacing_mm = EXACT_GRIDS[name]
    affine = affine_for(axcodes, spacing_mm, shape, rotation_deg=rotation_deg, origin_mm=(5.0, -3.0, 2.0))
    image, inside = blob_image(shape, affine, radii_mm=(22.0, 16.0, 14.0), centre_mm=(8.0, -5.0, 3.0))
    card = threshold_card(target_spacing_mm=target_spacing_mm)
    return Volume(data=image.astype(np.float32), affine=affine), inside, card


@pytest.mark.parametrize("name", sorted(EXACT_GRIDS))
def test_label_round_trip_through_prepare_and_restore_is_exact(name):
    volume, inside, card = _case(name)
    label = Volume(data=inside.astype(np.uint8), affine=volume.affine)
    prepared = prepare_volume(volume, card.data_config, label=label)
    assert prepared.image.shape[1:] == (32, 32)
    np.testing.assert_array_equal(restore_labels(prepared.label, prepared.geometry), inside)


@pytest.mark.parametrize("name", sorted(EXACT_GRIDS))
def test_prediction_is_the_world_object_on_the_input_grid(name):
    volume, inside, card = _case(name)
    predictor = make_threshold_predictor(card)
    labels = segment_volume(predictor, volume, card.data_config, batch_size=3)
    assert labels.shape == volume.shape and labels.dtype == np.uint8
    assert inside.sum() > 100
    np.testing.assert_array_equal(labels, inside)
    assert predictor.max_batch == 3  # slices are streamed in batches, never the whole volume at once


def test_resampled_non_square_grid_still_matches_closely():
    shape = (70, 50, 6)
    affine = affine_for("LPI", (0.9, 1.3, 3.0), shape, rotation_deg=-8.0)
    image, inside = blob_image(shape, affine, radii_mm=(20.0, 15.0, 7.0), centre_mm=(3.0, 2.0, 0.0))
    card = threshold_card(image_size=64, target_spacing_mm=2.0)
    labels = segment_volume(make_threshold_predictor(card), Volume(image.astype(np.float32), affine), card.data_config)
    dice = 2 * np.count_nonzero(labels & inside) / (np.count_nonzero(labels) + np.count_nonzero(inside))
    assert labels.shape == shape and dice > 0.95


@pytest.mark.parametrize("name, qform_code, sform_code", [
    ("RAS", 1, 1), ("LPS", 1, 2), ("oblique", 2, 4), ("permuted_anisotropic", 1, 0),
])  # fmt: skip
def test_written_label_map_keeps_the_input_header_geometry(tmp_path, name, qform_code, sform_code):
    volume, inside, card = _case(name)
    path = write_nifti(tmp_path / f"{name}.nii.gz", volume.data.astype(np.int16), volume.affine, qform_code, sform_code)
    predict_cases([path], tmp_path / "out", make_threshold_predictor(card))
    source, output = nib.load(str(path)), nib.load(str(tmp_path / "out" / f"{name}.nii.gz"))
    assert output.shape == source.shape and output.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(output.affine, source.affine)
    for getter in ("get_qform", "get_sform"):
        matrix_in, code_in = getattr(source.header, getter)(coded=True)
        matrix_out, code_out = getattr(output.header, getter)(coded=True)
        assert int(code_out) == int(code_in)
        if matrix_in is not None:
            np.testing.assert_allclose(matrix_out, matrix_in, rtol=0, atol=1e-6)
    assert output.header.get_zooms() == source.header.get_zooms()
    np.testing.assert_array_equal(np.asarray(output.dataobj), inside)


def test_probabilities_come_back_on_the_grid_and_sum_to_one():
    volume, inside, card = _case("oblique")
    prediction = predict_volume(make_threshold_predictor(card), volume, card.data_config, largest_component_classes=(),
                                with_probabilities=True)  # fmt: skip
    probabilities = prediction.probabilities
    assert probabilities.shape == volume.shape + (2,) and probabilities.dtype == np.uint8
    np.testing.assert_array_equal(probabilities.astype(int).sum(axis=-1), 255)
    np.testing.assert_array_equal(probabilities[..., 1] == 255, inside)
    assert set(prediction.seconds) == {"prepare", "network", "postprocess"}


def test_loaded_file_and_in_memory_volume_agree(tmp_path):
    volume, inside, card = _case("LPS")
    path = write_nifti(tmp_path / "scan.nii.gz", volume.data.astype(np.int16), volume.affine)
    labels = segment_volume(make_threshold_predictor(card), load_image(path), card.data_config)
    np.testing.assert_array_equal(labels, inside)
