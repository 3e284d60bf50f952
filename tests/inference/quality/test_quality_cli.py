"""The quality estimate end to end: `cdseg train` calibrates, `cdseg export` carries it, `cdseg predict` reports
it (exit 3 with --fail-on-flag), `cdseg evaluate --model` puts it beside the measured Dice."""

import csv
import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """A 4-step run (BatchNorm pre-norm blocks, CAN) with its quality calibration, and its export."""
    from keras_cdseg.deploy.export import export_model
    from keras_cdseg.training.trainer import train

    root = tmp_path_factory.mktemp("quality")
    config = RunConfig(
        data_dir=str(tiny_dataset),
        data=DataConfig(image_size=32, target_spacing_mm=12.0),
        model=ModelConfig(preset="unet", base_filters=4, depth=2, norm="batch"),
        train=TrainConfig(steps=4, val_every=4, checkpoint_every=4, batch_size=2, augment=False, val_fraction=0.5,
                          val_max_cases=1),  # fmt: skip
    )
    summary = train(config, root / "run", verbose=0, log=lambda text: None)
    export = export_model(root / "run", root=root / "saved_models")
    return root, summary, export


def test_training_writes_the_critic_and_the_calibration(trained):
    root, summary, _ = trained
    record = json.loads((root / "run" / "quality.json").read_text())
    assert (root / "run" / "discriminator.keras").is_file()
    assert summary["quality_calibration"]["num_samples"] == len(record["samples"]) > 0
    assert {s["degradation"] for s in record["samples"]} >= {"none", "inversion_1", "orientation_1", "crop_0.5"}
    assert "critic_score" in record["model"]["features"] and "feature_shift" in record["model"]["features"]
    assert all(0.0 <= s["dice"] <= 1.0 for s in record["samples"])


def test_export_carries_the_calibration_and_the_critic(trained):
    _, _, export = trained
    model_json = json.loads(export.model_json.read_text())
    assert model_json["quality"]["calibrated"] and model_json["quality"]["discriminator"] == "discriminator.keras"
    assert (export.version_dir / "quality.json").is_file() and (export.version_dir / "discriminator.keras").is_file()


def test_predict_reports_quality_and_fails_on_flag_with_exit_3(trained, tiny_dataset):
    root, _, export = trained
    scan = sorted(tiny_dataset.glob("imagesTs/*.nii.gz"))[0]
    runner = CliRunner()
    out = root / "pred_run"
    result = runner.invoke(cli, ["predict", str(scan), "-o", str(out), "--model", str(root / "run")])
    assert result.exit_code == 0, result.output
    quality = json.loads((out / "statistics.json").read_text())["cases"][scan.name.split(".")[0]]["quality"]
    assert set(quality) >= {"estimated_dice", "failure_probability", "signals", "flags", "flagged"}
    assert quality["signals"]["critic_score"] is not None and quality["signals"]["feature_shift"] is not None
    assert 0.0 <= quality["estimated_dice"] <= 1.0 and 0.0 <= quality["failure_probability"] <= 1.0
    # A 4-step model segments nothing well: its calibration knows, so the scan fails, on the case's line.
    assert quality["verdict"] == "fail" and quality["flagged"] and quality["warnings"]
    case_line = next(line for line in result.output.splitlines() if line.startswith(scan.name.split(".")[0]))
    assert f"fail (est. Dice {quality['estimated_dice']:.2f}): " in case_line
    assert quality["warnings"][0]["reason"] in case_line
    assert quality["signals"]["volume_deviation"] is not None and quality["typical_ranges"]
    review = runner.invoke(cli, ["predict", str(scan), "-o", str(root / "pred_review"), "--model", str(root / "run"),
                                 "--fail-on", "review"])  # fmt: skip
    assert review.exit_code == 3 and "verdict of review or worse" in review.output, review.output
    failed = runner.invoke(cli, ["predict", str(scan), "-o", str(root / "pred_fail"), "--model", str(root / "run"),
                                 "--fail-on-flag", "--quality-perturbations"])  # fmt: skip
    assert failed.exit_code == 3, failed.output
    written = json.loads((root / "pred_fail" / "statistics.json").read_text())  # outputs are written first
    assert next(iter(written["cases"].values()))["quality"]["signals"]["agreement"] is not None
    # The SavedModel export: the critic travels with it, and its quality_statistics signature gives the
    # same block statistics as the run directory's Keras generator.
    keras_quality = quality
    saved = runner.invoke(cli, ["predict", str(scan), "-o", str(root / "pred_saved"), "--model", str(export.version_dir)])
    assert saved.exit_code == 0, saved.output
    quality = next(iter(json.loads((root / "pred_saved" / "statistics.json").read_text())["cases"].values()))["quality"]
    assert "feature_shift_unavailable" not in quality["flags"]
    assert quality["signals"]["feature_shift"] == pytest.approx(keras_quality["signals"]["feature_shift"], rel=1e-3)
    assert quality["signals"]["critic_score"] == pytest.approx(keras_quality["signals"]["critic_score"], abs=1e-4)
    assert quality["estimated_dice"] == pytest.approx(keras_quality["estimated_dice"], abs=2e-3)


def test_tflite_export_reports_every_signal_without_tensorflow(trained, tiny_dataset, tmp_path):
    """The .tflite carries the quality probe, critic included: the same signals and estimate as the run's Keras
    model, from a `cdseg predict` process that imports neither TensorFlow nor Keras and prints no LiteRT log."""
    from keras_cdseg.deploy.export import export_model

    root, _, _ = trained
    export = export_model(root / "run", root=tmp_path / "saved_models", tflite=True)
    (export.version_dir / "discriminator.keras").unlink()  # not needed: the critic is inside the .tflite
    scan = sorted(tiny_dataset.glob("imagesTs/*.nii.gz"))[0]
    expected = CliRunner().invoke(cli, ["predict", str(scan), "-o", str(tmp_path / "keras"), "--model", str(root / "run")])
    assert expected.exit_code == 0, expected.output
    script = ("import sys\nfrom cdseg.main import cli\ntry:\n    cli(sys.argv[1:])\nexcept SystemExit as e:\n"
              "    code = e.code\nprint('imported:', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
              "sys.exit(code)\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script, "predict", str(scan), "-o", str(tmp_path / "lite"),
                             "--model", str(export.tflite_files["none"])], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout and result.stderr == ""
    qualities = [next(iter(json.loads((tmp_path / run / "statistics.json").read_text())["cases"].values()))["quality"]
                 for run in ("keras", "lite")]  # fmt: skip
    keras_quality, quality = qualities
    assert not {"feature_shift_unavailable", "critic_unavailable"} & set(quality["notes"])
    assert quality["signals"]["feature_shift"] == pytest.approx(keras_quality["signals"]["feature_shift"], rel=1e-4)
    assert quality["signals"]["critic_score"] == pytest.approx(keras_quality["signals"]["critic_score"], abs=1e-5)
    assert quality["estimated_dice"] == pytest.approx(keras_quality["estimated_dice"], abs=1e-3)
    assert quality["verdict"] == keras_quality["verdict"]


def test_a_model_without_discriminator_reports_the_critic_as_absent(trained, tiny_dataset):
    root, _, _ = trained
    bare = root / "run_without_critic"
    shutil.copytree(root / "run", bare, ignore=shutil.ignore_patterns("discriminator.keras", "checkpoints", "cache"))
    scan = sorted(tiny_dataset.glob("imagesTs/*.nii.gz"))[0]
    result = CliRunner().invoke(cli, ["predict", str(scan), "-o", str(root / "pred_bare"), "--model", str(bare)])
    assert result.exit_code == 0, result.output
    quality = next(iter(json.loads((root / "pred_bare" / "statistics.json").read_text())["cases"].values()))["quality"]
    assert quality["signals"]["critic_score"] is None and "critic_unavailable" in quality["flags"]
    assert quality["unavailable"]["critic_score"] == "no discriminator beside the model"
    assert quality["estimated_dice"] is not None  # refitted on the signals this model has


def test_evaluate_reports_the_estimate_beside_the_measured_dice(trained, tiny_dataset):
    root, _, _ = trained
    out = root / "report"
    result = subprocess.run([sys.executable, "-m", "cdseg.main", "evaluate", "--model", str(root / "run"), "--data",
                             str(tiny_dataset), "--out", str(out), "--quiet"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    for case in report["cases"]:
        assert "dice" in case["classes"]["liver"] and 0.0 <= case["quality"]["estimated_dice"] <= 1.0
    rows = list(csv.DictReader(open(out / "per_case.csv")))
    assert rows and all(row["estimated_dice"] and row["failure_probability"] for row in rows)
