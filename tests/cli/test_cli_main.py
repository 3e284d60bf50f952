"""The installed `cdseg` script: fast help (TensorFlow imported lazily), every command listed."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from cdseg.main import cli

CLI_DIR = Path(__import__("cdseg").__file__).parent


def test_installed_script_lists_every_command_quickly():
    script = shutil.which("cdseg")
    assert script, "the console script `cdseg` is not installed (pip install -e .)"
    start = time.perf_counter()
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert elapsed < 3.0, f"`cdseg --help` took {elapsed:.2f} s"
    expected = {p.stem[4:].replace("_", "-") for p in CLI_DIR.glob("cmd_*.py")}
    assert {"info", "preprocess", "evaluate"} <= expected
    for name in expected:
        assert f"  {name} " in result.stdout, f"{name} missing from --help"


def test_help_does_not_import_tensorflow():
    code = "import sys; from cdseg.main import cli; cli(['--help'], standalone_mode=False); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_every_command_has_help():
    runner = CliRunner()
    for name in cli.list_commands(None):
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_info_devices_reports_versions_and_what_tensorflow_sees_as_json():
    result = CliRunner().invoke(cli, ["info", "--devices"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["tensorflow"] and info["keras"].startswith("3.")
    import importlib.metadata

    assert info["tensorboard"] == importlib.metadata.version("tensorboard")
    assert info["gpus"] == [] or all("name" in gpu for gpu in info["gpus"])
    assert info["training_strategy"]["kind"] in ("default", "mirrored", "multiworker")
    assert info["training_strategy"]["reason"]


def test_info_names_the_strategy_train_would_choose(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}')
    info = json.loads(CliRunner().invoke(cli, ["info", "--devices"]).output)
    assert info["training_strategy"] == {"kind": "multiworker", "reason": "TF_CONFIG is set"}
    assert info["data_config"]["context"] == 1


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["trian"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_one_spelling_per_concept_across_commands():
    runner = CliRunner()
    helps = {name: " ".join(runner.invoke(cli, [name, "--help"]).output.split())
             for name in ("predict", "train", "demo", "export", "synth", "info")}  # fmt: skip
    for name in ("predict", "train", "demo", "synth"):
        assert "-q, --quiet" in helps[name], name
    for name in ("predict", "train", "demo", "export", "info"):
        assert "-v, --verbose" in helps[name], name
    assert "--postprocess / --no-postprocess" in helps["predict"]
    assert "--modality TEXT" in helps["train"]
    assert "about 5 minutes" not in helps["demo"]
