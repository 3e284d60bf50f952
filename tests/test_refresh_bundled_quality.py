"""scripts/refresh_bundled_quality.py on a copy of the installed bundle: the calibration and the model card change,
the weights and the version do not, the manifest verifies, and a calibration for another organ is refused."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from refresh_bundled_quality import main, refresh_quality  # noqa: E402

from keras_cdseg.errors import InputError  # noqa: E402
from keras_cdseg.pretrained import PRETRAINED_DIR, bundled_model, verify_bundle  # noqa: E402


@pytest.fixture
def bundle_copy(tmp_path):
    if bundled_model(PRETRAINED_DIR) is None:
        pytest.skip("no bundled model in this checkout")
    dest = tmp_path / "pretrained"
    shutil.copytree(PRETRAINED_DIR, dest, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return dest


def test_a_new_calibration_replaces_the_old_one_and_nothing_else(bundle_copy, tmp_path):
    before = bundled_model(bundle_copy)
    calibration = json.loads((before.path / "quality.json").read_text())
    ranges = {"spleen": {"log_mean": 5.4, "log_std": 0.46, "min_ml": 75.0, "max_ml": 437.0, "num_cases": 34}}
    (tmp_path / "quality.json").write_text(json.dumps({**calibration, "organ_volume_references": ranges}))
    record = refresh_quality(tmp_path / "quality.json", bundle_copy)
    after = bundled_model(bundle_copy)
    assert verify_bundle(after) == [] and after.version == before.version and after.sha256 != before.sha256
    changed = {f for f, digest in after.record["files"].items() if before.record["files"][f] != digest}
    assert changed == {"quality.json", "model.json"} and "quality_refreshed_utc" in record
    card = json.loads((after.path / "model.json").read_text())["quality"]
    assert card["organ_volume_references"] == ranges and card["model"] == calibration["model"]
    assert card["discriminator"] == "discriminator.keras"


def test_a_calibration_for_another_organ_or_no_file_is_a_one_line_error(bundle_copy, tmp_path, capsys):
    calibration = json.loads((bundled_model(bundle_copy).path / "quality.json").read_text())
    (tmp_path / "spleen.json").write_text(json.dumps({**calibration, "organ": {"name": "spleen", "value": 4}}))
    with pytest.raises(InputError, match="calibrated for organ"):
        refresh_quality(tmp_path / "spleen.json", bundle_copy)
    assert main([str(tmp_path / "missing.json"), "--dest", str(bundle_copy)]) == 2
    assert capsys.readouterr().err.startswith("Error: ") and verify_bundle(bundled_model(bundle_copy)) == []
