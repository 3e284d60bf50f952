"""The default-model order (--model > CDSEG_MODEL > ./saved_models/ > bundled), the bundle manifest and
`cdseg models`; no network is loaded here (tests/test_wheel.py runs predict on the bundled model)."""

import json

import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.errors import InputError
from keras_cdseg.model_resolution import available_models, resolve_model
from keras_cdseg.pretrained import BUNDLE_FORMAT, bundled_model, files_sha256, model_files, verify_bundle


@pytest.fixture
def bundle(tmp_path):
    """A bundle folder as scripts/bundle_model.py writes it (the model files' content does not matter here)."""
    root = tmp_path / "pretrained"
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text("{}")
    (root / "model" / "best_generator.keras").write_bytes(b"weights")
    files = model_files(root / "model")
    record = {"format": BUNDLE_FORMAT, "name": "test-bundle", "version": 3, "model_format": "keras",
              "placeholder": False, "model_dir": "model", "files": files, "sha256": files_sha256(files)}  # fmt: skip
    (root / "bundle.json").write_text(json.dumps(record))
    return bundled_model(root)


def _export(root, name, version):
    version_dir = root / name / str(version)
    version_dir.mkdir(parents=True)
    (version_dir / "saved_model.pb").write_bytes(b"")
    return version_dir


def test_each_rule_wins_over_the_ones_below_it(tmp_path, bundle):
    saved = tmp_path / "saved_models"
    env_model = tmp_path / "env_model"
    env_model.mkdir()
    option = resolve_model("given", {"CDSEG_MODEL": str(env_model)}, saved, bundle)
    assert (option.source, str(option.path)) == ("option", "given")
    assert resolve_model(None, {}, saved, bundle).source == "bundled"
    _export(saved, "cdseg", 1)
    newest = _export(saved, "cdseg", 2)
    choice = resolve_model(None, {}, saved, bundle)
    assert (choice.source, choice.path) == ("saved_models", newest)
    assert choice.describe() == f"{newest} (highest version under saved_models/)"
    from_env = resolve_model(None, {"CDSEG_MODEL": str(env_model)}, saved, bundle)
    assert (from_env.source, from_env.path) == ("environment", env_model)
    assert from_env.record()["rule"] == "CDSEG_MODEL environment variable"


def test_bundled_choice_names_the_model_version_and_checksum(tmp_path, bundle):
    choice = resolve_model(None, {"CDSEG_MODEL": ""}, tmp_path / "none", bundle)
    assert choice.path == bundle.path
    assert choice.describe().startswith("bundled model test-bundle v3 (keras, sha256 ")
    record = choice.record()
    assert record["source"] == "bundled" and record["sha256"] == bundle.sha256 and record["version"] == 3


def test_a_bundled_tflite_copy_is_what_predict_runs(tmp_path, bundle):
    root = bundle.path.parent
    (bundle.path / "tiny.tflite").write_bytes(b"flatbuffer")
    record = json.loads((root / "bundle.json").read_text())
    files = model_files(bundle.path)
    (root / "bundle.json").write_text(json.dumps({**record, "tflite": "tiny.tflite", "files": files,
                                                  "sha256": files_sha256(files)}))  # fmt: skip
    with_lite = bundled_model(root)
    choice = resolve_model(None, {}, tmp_path / "none", with_lite)
    assert choice.path == with_lite.tflite == bundle.path / "tiny.tflite"
    assert "run on LiteRT" in choice.describe() and choice.record()["path"].endswith("tiny.tflite")
    assert [m["path"] for m in available_models(None, {}, tmp_path / "none", with_lite)["models"]] == [str(choice.path)]
    (bundle.path / "tiny.tflite").unlink()  # damaged: the Keras model still runs, `cdseg models --verify` says why
    assert bundled_model(root).predict_path == bundle.path and verify_bundle(bundled_model(root)) == ["tiny.tflite"]


def test_unusable_orders_are_one_line_errors(tmp_path, bundle, monkeypatch):
    with pytest.raises(InputError, match="named by CDSEG_MODEL but not found"):
        resolve_model(None, {"CDSEG_MODEL": str(tmp_path / "missing")}, tmp_path, bundle)
    _export(tmp_path / "saved_models", "a", 4)
    _export(tmp_path / "saved_models", "b", 4)
    with pytest.raises(InputError, match="version 4 exists for several models"):
        resolve_model(None, {}, tmp_path / "saved_models", bundle)
    # A package without bundle.json and nothing else: the error names every way to get a model.
    assert bundled_model(tmp_path / "empty") is None
    monkeypatch.setattr("keras_cdseg.model_resolution._installed_bundle", lambda: None)
    with pytest.raises(InputError, match="pass --model, set CDSEG_MODEL, export one"):
        resolve_model(None, {}, tmp_path / "nothing")


def test_available_models_marks_what_predict_would_use(tmp_path, bundle):
    saved = tmp_path / "saved_models"
    _export(saved, "cdseg", 1)
    listing = available_models(None, {}, saved, bundle)
    assert [(m["source"], m["used"]) for m in listing["models"]] == [("saved_models", True), ("bundled", False)]
    listing = available_models(None, {"CDSEG_MODEL": str(tmp_path / "gone")}, saved, bundle)
    assert not any(m["used"] for m in listing["models"]) and "CDSEG_MODEL" in listing["error"]


def test_verify_bundle_finds_changed_missing_and_extra_files(bundle):
    assert verify_bundle(bundle) == []
    (bundle.path / "best_generator.keras").write_bytes(b"other weights")
    (bundle.path / "config.json").unlink()
    (bundle.path / "extra.bin").write_bytes(b"")
    assert verify_bundle(bundle) == ["best_generator.keras", "config.json", "extra.bin"]


def test_manifest_of_another_format_is_no_bundle(tmp_path, bundle):
    record = json.loads((bundle.path.parent / "bundle.json").read_text())
    (bundle.path.parent / "bundle.json").write_text(json.dumps({**record, "format": "something/9"}))
    assert bundled_model(bundle.path.parent) is None
    (bundle.path.parent / "bundle.json").write_text("{not json")
    assert bundled_model(bundle.path.parent) is None


def test_cdseg_models_lists_the_installed_bundle_and_verifies_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDSEG_MODEL", raising=False)
    installed = bundled_model()
    result = CliRunner().invoke(cli, ["models", "--verify"])
    if installed is None:
        assert result.exit_code == 0 and "No model available." in result.output
        return
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("* bundled ")
    assert f"sha256 {installed.sha256}" in result.output
    monkeypatch.setenv("CDSEG_MODEL", str(tmp_path / "missing"))
    listing = json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)
    assert listing["error"] and not any(m["used"] for m in listing["models"])


def test_cdseg_info_names_the_bundled_model_without_tensorflow():
    import subprocess
    import sys

    code = ("import json, sys; from click.testing import CliRunner; from cdseg.main import cli;"
            "out = CliRunner().invoke(cli, ['info']).output; print(json.dumps([json.loads(out)['bundled_model'],"
            " 'tensorflow' in sys.modules]))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    summary, tensorflow_loaded = json.loads(result.stdout.splitlines()[-1])
    installed = bundled_model()
    assert not tensorflow_loaded
    if installed is None:
        assert summary is None
    else:
        assert (summary["name"], summary["version"], summary["sha256"]) == (installed.name, installed.version,
                                                                            installed.sha256)  # fmt: skip
