"""`cdseg export`: a run directory becomes saved_models/<name>/<version>/; existing versions are refused."""

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdseg.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_fixtures import make_run_dir  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run") / "run")


def test_export_then_refuse_to_overwrite(run_dir, tmp_path):
    runner = CliRunner()
    root = tmp_path / "saved_models"
    result = runner.invoke(cli, ["export", str(run_dir), "--root", str(root), "--tflite"])
    assert result.exit_code == 0, result.output
    assert f"Exported {root / 'cdseg' / '1'} (version 1)" in result.output
    assert "slices [N, 32, 32, 3] -> probabilities, labels (background, liver)" in result.output
    assert "TFLite (float32)" in result.output and (root / "cdseg" / "1" / "cdseg.tflite").is_file()

    again = runner.invoke(cli, ["export", str(run_dir), "--root", str(root), "--version", "1"])
    assert again.exit_code == 2
    lines = again.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "already exists" in lines[0]

    named = runner.invoke(cli, ["export", str(run_dir), "--root", str(root), "--name", "liver", "--version", "4"])
    assert named.exit_code == 0 and (root / "liver" / "4" / "saved_model.pb").is_file()


def test_export_of_a_missing_source_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "nope"), "--root", str(tmp_path / "sm")])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0 and "not found" in result.output
    assert not (tmp_path / "sm").exists()
