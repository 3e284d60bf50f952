"""`load_predictor` over every model kind, and the default-model rule (highest version, TF Serving's)."""

import json
import shutil

import numpy as np
import pytest
from deploy_fixtures import affine_for, blob_image, write_nifti

from keras_cdseg.data.nifti_io import load_image
from keras_cdseg.errors import InputError
from keras_cdseg.inference.volume import predict_volume
from keras_cdseg.inference.predictors import (
    KerasPredictor,
    SavedModelPredictor,
    TFLitePredictor,
    load_predictor,
)
from keras_cdseg.model_resolution import default_model_path


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    shape = (40, 36, 12)
    affine = affine_for("LPS", (3.0, 3.5, 5.0), shape)
    image, _ = blob_image(shape, affine)
    return load_image(write_nifti(tmp_path_factory.mktemp("vol") / "scan.nii.gz", image, affine))


def test_every_model_kind_gives_the_same_segmentation(run_dir, export_root, version_dir, volume):
    sources = {
        "run": (run_dir, KerasPredictor),
        "keras": (run_dir / "best_generator.keras", KerasPredictor),
        "version": (version_dir, SavedModelPredictor),
        "base_path": (export_root / "cdseg", SavedModelPredictor),
        "tflite": (version_dir / "cdseg.tflite", TFLitePredictor),
    }
    results = {}
    for name, (path, cls) in sources.items():
        predictor = load_predictor(path)
        assert type(predictor) is cls and predictor.input_shape == (32, 32, 3)
        assert predictor.card.data_config.target_spacing_mm == 4.0
        results[name] = predict_volume(predictor, volume, predictor.card.data_config,
                                       predictor.card.largest_component_classes, batch_size=5,
                                       with_probabilities=True)  # fmt: skip
    reference = results["run"]
    assert reference.labels.shape == volume.shape and reference.labels.dtype == np.uint8
    for name in ("keras", "version", "base_path"):
        np.testing.assert_array_equal(results[name].labels, reference.labels, err_msg=name)
        np.testing.assert_array_equal(results[name].probabilities, reference.probabilities, err_msg=name)
    # TFLite differs by <= 1e-4 in probability: at most one uint8 step after scaling.
    scaled_difference = np.abs(results["tflite"].probabilities.astype(int) - reference.probabilities)
    assert scaled_difference.max() <= 1


def test_default_model_is_the_highest_version(tmp_path, version_dir):
    root = tmp_path / "saved_models"
    for version in (2, 10):
        shutil.copytree(version_dir, root / "cdseg" / str(version))
    (root / "cdseg" / "11").mkdir()  # no SavedModel inside: not a servable version
    (root / "cdseg" / ".12.abc.tmp").mkdir()  # an unfinished export
    assert default_model_path(root) == root / "cdseg" / "10"
    shutil.copytree(version_dir, root / "other" / "3")
    assert default_model_path(root) == root / "cdseg" / "10"
    shutil.copytree(version_dir, root / "other" / "10")
    with pytest.raises(InputError, match="several models"):
        default_model_path(root)


def test_no_exported_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no exported model"):
        default_model_path(tmp_path / "saved_models")


def test_model_json_channels_must_match_the_network(tmp_path, version_dir):
    copy = shutil.copytree(version_dir, tmp_path / "cdseg" / "1")
    record = json.loads((copy / "model.json").read_text())
    record["preprocessing"]["data_config"]["context"] = 2
    (copy / "model.json").write_text(json.dumps(record))
    for path in (copy, copy / "cdseg.tflite"):
        with pytest.raises(InputError, match="3 channels but its config says context T=2"):
            load_predictor(path)


@pytest.mark.parametrize("name, content, message", [
    ("missing", None, "model not found"),
    ("", None, "not a model"),
    ("x.keras", b"not a zip", "cannot load Keras model"),
    ("x.h5", b"", "not a model"),
    ("x.tflite", b"garbage", "model.json not found"),
])  # fmt: skip
def test_unusable_model_paths_are_input_errors(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_predictor(tmp_path / name)


def test_corrupt_tflite_beside_a_valid_model_json_is_an_input_error(tmp_path, version_dir):
    copy = shutil.copytree(version_dir, tmp_path / "1")
    (copy / "cdseg.tflite").write_bytes(b"garbage" * 10)
    with pytest.raises(InputError, match="cannot load TFLite model"):
        load_predictor(copy / "cdseg.tflite")


def test_export_without_model_json_is_refused(tmp_path, version_dir):
    copy = shutil.copytree(version_dir, tmp_path / "1")
    (copy / "model.json").unlink()
    with pytest.raises(InputError, match="model.json not found"):
        load_predictor(copy)
