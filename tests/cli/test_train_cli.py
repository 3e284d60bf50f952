"""`cdseg train` before step 1: the next command when the data folder is not a dataset, the expected duration,
the CPU recipe for the paper's schedule on a machine without a GPU, and one spelling per option."""

import json

import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from keras_cdseg.training.duration import duration_lines, format_duration, measure_in_child, nvidia_driver_gpus


def test_a_folder_of_scans_points_to_cdseg_preprocess(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "ct_1.nii.gz").write_bytes(b"")
    result = CliRunner().invoke(cli, ["train", "--data", str(scans), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "dataset.json not found; it holds 1 NIfTI file(s)" in result.output
    assert f"`cdseg preprocess {scans} scans_dataset`" in result.output and "cdseg train --data scans_dataset" in result.output
    assert not (tmp_path / "run").exists()


def test_the_papers_schedule_on_a_cpu_names_the_cpu_recipe_before_step_1(tmp_path):
    if nvidia_driver_gpus():
        pytest.skip("this machine has an NVIDIA GPU: the paper's schedule is the right one here")
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1}, "training": [], "test": []}))
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--no-estimate"])
    lines = result.output.splitlines()
    assert lines[0] == ("Note: 100000 steps is the paper's GPU schedule; on this CPU-only machine use the CPU recipe: "
                        f"cdseg train --data {data} --out {tmp_path / 'run'} --recipe real-cpu")  # fmt: skip
    assert result.exit_code == 2 and "no labelled training cases" in lines[-1]  # the data's own error comes after


def test_the_step_is_timed_in_a_child_process_and_printed_as_a_duration():
    tiny = RunConfig(data_dir="unused", data=DataConfig(image_size=32),
                     model=ModelConfig(preset="unet", base_filters=4, depth=2), train=TrainConfig(batch_size=2))  # fmt: skip
    seconds = measure_in_child(tiny, num_classes=3)
    assert seconds is not None and 0 < seconds < 60
    lines = duration_lines(5000, seconds, has_gpu=True, recipe="real-cpu")
    assert lines == [f"Expected: 5000 steps x {seconds:.2f} s/step (measured here) = about "
                     f"{format_duration(5000 * seconds)} of training steps, plus validation"]  # fmt: skip
    # A resumed run counts only the steps it has left; the paper's schedule is fine with a GPU.
    assert duration_lines(100_000, 1.84, has_gpu=True, steps_done=99_000)[0].startswith("Expected: 1000 steps x 1.84")
    assert [format_duration(s) for s in (40, 420, 3900, 184_000)] == ["40 s", "7 min", "1 h 05 min", "51 h"]


def test_one_spelling_per_concept_with_the_old_ones_hidden():
    result = CliRunner().invoke(cli, ["train", "--help"])
    text = " ".join(result.output.split())
    for spelling in ("--modality TEXT", "-q, --quiet", "-v, --verbose [LEVEL]", "--estimate / --no-estimate"):
        assert spelling in text, spelling
    assert "--modalities" not in text
    for default in ("[default: (100000); x>=1]", "[default: (6); x>=1]", "[default: (paper)]", "[default: (auto)]"):
        assert default in text, default
