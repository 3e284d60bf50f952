"""scripts/bundle_model.py: a run or an export into a package folder, float16-stored weights, the TFLite copy
`cdseg predict` runs, checksums, the size limit, and the replaced bundle staying intact when a new one is
refused."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

from bundle_model import bundle_model  # noqa: E402
from deploy_fixtures import make_run_dir  # noqa: E402

from keras_cdseg.errors import InputError  # noqa: E402
from keras_cdseg.pretrained import bundled_model, verify_bundle  # noqa: E402

SLICES = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("bundle") / "run", num_classes=4)


def test_run_bundled_as_keras_with_float16_weights_predicts_like_the_run(run_dir, tmp_path):
    import shutil

    from keras_cdseg.inference.predictors import load_predictor

    run_dir = shutil.copytree(run_dir, tmp_path / "run")
    calibration = {"format": "keras_cdseg.quality/1", "organ": "liver", "failure_dice": 0.5, "volume_reference": None,
                   "model": None, "note": "copied as it is"}  # fmt: skip
    (run_dir / "quality.json").write_text(json.dumps(calibration))
    record = bundle_model(run_dir, tmp_path / "pretrained", name="tiny", placeholder=True)
    bundle = bundled_model(tmp_path / "pretrained")
    assert (bundle.name, bundle.version, bundle.placeholder, bundle.sha256) == ("tiny", 1, True, record["sha256"])
    assert set(record["files"]) == {"best_generator.keras", "config.json", "quality.json", "tiny.tflite", "model.json",
                                    "feature_statistics.json"}
    assert record["weights_dtype"] == "float16" and record["quality_calibrated"] and verify_bundle(bundle) == []
    original = (run_dir / "best_generator.keras").stat().st_size
    assert (bundle.path / "best_generator.keras").stat().st_size < original
    bundled = load_predictor(bundle.path)
    assert bundled.card.labels == json.loads((run_dir / "config.json").read_text())["labels"]
    assert bundled.model.weights[0].dtype == "float32"  # stored as float16, computed in float32
    np.testing.assert_allclose(bundled(SLICES), load_predictor(run_dir)(SLICES), atol=2e-3)
    # What `cdseg predict` runs: the TFLite copy of the float16-stored weights, with the quality probe.
    assert bundle.predict_path == bundle.tflite == bundle.path / "tiny.tflite" and record["tflite"] == "tiny.tflite"
    lite = load_predictor(bundle.predict_path)
    assert lite.kind == "tflite" and lite.feature_statistics is not None and lite.card.labels == bundled.card.labels
    np.testing.assert_allclose(lite(SLICES), bundled(SLICES), atol=1e-5)
    again = bundle_model(run_dir, tmp_path / "pretrained", name="tiny", float16=False, tflite=False)
    assert again["version"] == 2 and again["weights_dtype"] == "float32" and again["tflite"] is None
    assert bundled_model(tmp_path / "pretrained").predict_path == bundle.path  # no TFLite: the Keras model


def test_export_bundled_as_saved_model_with_one_float32_tflite_file(run_dir, tmp_path):
    from keras_cdseg.deploy.export import export_model
    from keras_cdseg.inference.predictors import load_predictor

    export_model(run_dir, root=tmp_path / "saved_models", tflite=True, quantize=("float16",))
    record = bundle_model(tmp_path / "saved_models" / "cdseg", tmp_path / "pretrained", model_format="saved_model",
                          name="tiny")  # fmt: skip
    assert "saved_model.pb" in record["files"] and "model.json" in record["files"]
    assert [name for name in record["files"] if name.endswith(".tflite")] == ["tiny.tflite"]  # not the export's
    bundle = bundled_model(tmp_path / "pretrained")
    predictor = load_predictor(bundle.path)
    assert predictor.kind == "saved_model"
    np.testing.assert_allclose(predictor(SLICES), load_predictor(run_dir)(SLICES), atol=1e-5)
    lite = load_predictor(bundle.predict_path)
    assert lite.kind == "tflite" and lite.feature_statistics is not None
    np.testing.assert_allclose(lite(SLICES), predictor(SLICES), atol=1e-5)


def test_a_refused_bundle_leaves_the_previous_one_intact(run_dir, tmp_path):
    first = bundle_model(run_dir, tmp_path / "pretrained", name="tiny")
    with pytest.raises(InputError, match="over the 0.001 MB limit"):
        bundle_model(run_dir, tmp_path / "pretrained", name="tiny", max_mb=0.001)
    with pytest.raises(InputError, match="expected a run directory"):
        bundle_model(tmp_path, tmp_path / "pretrained", name="tiny")
    bundle = bundled_model(tmp_path / "pretrained")
    assert bundle.sha256 == first["sha256"] and verify_bundle(bundle) == []
    assert sorted(p.name for p in (tmp_path / "pretrained").iterdir()) == ["bundle.json", "model"]
