"""`export_model`: TF Serving layout, model.json, the serving signature, reloads and TFLite against Keras."""

import importlib.util
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.deploy.export import export_model
from keras_cdseg.model_card import MODEL_FORMAT, config_hash, file_sha256, list_versions, read_model_card

SLICES = np.random.default_rng(0).random((5, 32, 32, 3), dtype=np.float32)


def test_export_writes_one_complete_version_with_model_json(run_dir, export_root, version_dir):
    assert [p.name for p in (export_root / "cdseg").iterdir()] == ["1"]  # no temporary folder left behind
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    record = json.loads((version_dir / "model.json").read_text())
    run_record = json.loads((run_dir / "config.json").read_text())
    assert record["format"] == MODEL_FORMAT and record["name"] == "cdseg" and record["version"] == 1
    assert record["preprocessing"]["data_config"] == run_record["run"]["data"]
    assert record["preprocessing"]["num_channels"] == 3
    assert record["labels"] == {"background": 0, "liver": 1} and record["class_names"] == ["background", "liver"]
    assert record["postprocessing"]["largest_component_classes"] == [1]
    assert record["signature"]["inputs"]["slices"] == {"dtype": "float32", "shape": [None, 32, 32, 3]}
    assert record["signature"]["outputs"]["labels"]["dtype"] == "uint8"
    assert record["source"]["config_hash"] == config_hash(run_record["run"])
    assert record["source"]["generator_sha256"] == file_sha256(run_dir / "best_generator.keras")
    assert record["versions"]["tensorflow"] and record["versions"]["keras"]
    sizes = {name: info["bytes"] for name, info in record["tflite"].items()}
    assert sizes == {name: (version_dir / name).stat().st_size for name in sizes}
    assert set(sizes) == {"cdseg.tflite", "cdseg_float16.tflite", "cdseg_dynamic.tflite"}
    assert sizes["cdseg_float16.tflite"] < sizes["cdseg.tflite"]
    card = read_model_card(version_dir)
    assert card.data_config.target_spacing_mm == 4.0 and card.largest_component_classes == (1,)


def test_saved_model_cli_lists_the_serving_signature(version_dir):
    cli = shutil.which("saved_model_cli")
    assert cli, "saved_model_cli (installed with tensorflow) is not on PATH"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([cli, "show", "--all", "--dir", str(version_dir)], capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout
    signature = text[text.index("signature_def['serving_default']"):]
    assert "inputs['slices'] tensor_info:" in signature
    assert "outputs['probabilities'] tensor_info:" in signature and "outputs['labels'] tensor_info:" in signature
    assert "shape: (-1, 32, 32, 3)" in signature and "DT_UINT8" in signature
    assert "Method name is: tensorflow/serving/predict" in signature


def test_reloaded_saved_model_gives_the_keras_outputs(version_dir, keras_generator):
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    outputs = signature(slices=tf.constant(SLICES))
    expected = keras_generator.predict(SLICES, verbose=0)
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, rtol=0, atol=1e-6)
    assert outputs["labels"].dtype == tf.uint8
    np.testing.assert_array_equal(outputs["labels"].numpy(), np.argmax(outputs["probabilities"].numpy(), axis=-1))


def test_tflite_float32_matches_keras_within_1e_4(version_dir, keras_generator):
    from keras_cdseg.inference.predictors import TFLitePredictor

    predictor = TFLitePredictor(version_dir / "cdseg.tflite")
    assert predictor.runtime == ("ai_edge_litert" if importlib.util.find_spec("ai_edge_litert") else "tf.lite")
    expected = keras_generator.predict(SLICES, verbose=0)
    assert np.abs(predictor(SLICES) - expected).max() <= 1e-4
    assert np.abs(predictor(SLICES[:2]) - expected[:2]).max() <= 1e-4  # another batch size resizes the input


@pytest.mark.parametrize("file_name, tolerance", [("cdseg_float16.tflite", 2e-2), ("cdseg_dynamic.tflite", 1e-1)])
def test_quantized_tflite_variants_stay_close(version_dir, keras_generator, file_name, tolerance):
    from keras_cdseg.inference.predictors import TFLitePredictor

    probabilities = TFLitePredictor(version_dir / file_name)(SLICES)
    assert probabilities.shape == (5, 32, 32, 2)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-3)
    assert np.abs(probabilities - keras_generator.predict(SLICES, verbose=0)).max() <= tolerance


def test_next_export_takes_the_next_version_and_never_overwrites(run_dir, tmp_path):
    root = tmp_path / "saved_models"
    first = export_model(run_dir, root=root)
    second = export_model(run_dir, root=root)
    assert (first.version, second.version) == (1, 2) and list_versions(root / "cdseg") == [1, 2]
    before = (first.version_dir / "model.json").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        export_model(run_dir, root=root, version=1)
    assert (first.version_dir / "model.json").read_bytes() == before
    assert sorted(p.name for p in (root / "cdseg").iterdir()) == ["1", "2"]
    assert export_model(run_dir, root=root, name="other", version=7).version_dir == root / "other" / "7"


def test_bare_keras_file_exports_with_default_preprocessing(run_dir, tmp_path):
    keras_file = tmp_path / "loose" / "generator.keras"
    keras_file.parent.mkdir()
    shutil.copy(run_dir / "best_generator.keras", keras_file)
    result = export_model(keras_file, root=tmp_path / "saved_models")
    card = read_model_card(result.model_json)
    assert card.uses_default_preprocessing
    assert (card.data_config.image_size, card.data_config.context, card.data_config.target_spacing_mm) == (32, 1, 1.5)
    assert card.labels == {"background": 0, "liver": 1}
    assert not read_model_card(export_model(run_dir / "best_generator.keras", root=tmp_path / "b").model_json)\
        .uses_default_preprocessing  # inside a run directory its config.json is used


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "../evil"}, "model name"),
    ({"quantize": ("int4",)}, "unknown quantization"),
    ({"version": 0}, "positive integer"),
])  # fmt: skip
def test_bad_export_settings_are_input_errors(run_dir, tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        export_model(run_dir, root=tmp_path / "saved_models", **kwargs)
    assert not (tmp_path / "saved_models").exists()


def test_model_inconsistent_with_its_config_is_refused(run_dir, tmp_path):
    bad_run = tmp_path / "bad_run"
    shutil.copytree(run_dir, bad_run)
    record = json.loads((bad_run / "config.json").read_text())
    record["run"]["data"]["context"] = 2
    (bad_run / "config.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="3 channels but its config says context T=2"):
        export_model(bad_run, root=tmp_path / "saved_models")
    assert not (tmp_path / "saved_models" / "cdseg").exists()
