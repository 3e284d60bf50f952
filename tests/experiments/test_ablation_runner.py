"""The ablation harness end to end on tiny runs (32×32 slices, a 2-level U-Net, a handful of steps)."""

import dataclasses
import json

import keras
import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.runner import rebuild_report, run_ablation, run_one, run_root
from keras_cdseg.experiments.slices import PreparedTestSplit
from keras_cdseg.experiments.variants import VARIANTS_BY_KEY, AblationSettings
from keras_cdseg.models.saving import load_model
from keras_cdseg.training.trainer import train

TINY = AblationSettings(image_size=32, target_spacing_mm=12.0, base_filters=4, depth=2, steps=4, batch_size=2,
                        val_max_cases=1, augment=False)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_ablation(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation") / "results"
    lines = []
    record = run_ablation(tiny_dataset, out, TINY, seeds=[0], only=["post_bn_can"], log=lines.append)
    return out, record, lines


def test_two_variants_one_seed_give_a_well_formed_report(tiny_ablation):
    out, record, lines = tiny_ablation
    assert record["status"] == "finished"
    assert [(r["seed"], r["variant"], r["status"]) for r in record["runs"]] == [
        (0, "post_bn_can", "finished"), (0, "pre_bn_can", "finished")
    ]  # fmt: skip
    assert json.loads((out / "runs.json").read_text()) == record
    run = record["runs"][0]
    assert run["config"]["model"]["norm_order"] == "post" and run["config"]["train"]["steps"] == 4
    assert set(run["split"]) == {"train", "val"} and run["train"]["steps_done"] == 4
    liver = run["classes"]["liver"]
    assert set(liver) == {"all", "CT", "MR"} and liver["CT"]["num_cases"] == 1
    assert set(liver["MR"]["scores"]) >= {"vo", "rvd", "assd", "rmsd", "mssd", "overall"}
    assert 0 <= liver["all"]["scores"]["overall"] <= 100
    sparsity = run["sparsity"]
    assert set(sparsity) == {"CT", "MR", "all"} and 0 < sparsity["CT"]["overall"] < 1
    assert (out / "runs/seed0/post_bn_can/evaluation/report.json").is_file()
    assert (out / "fig2_response_histograms.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    for heading in ("## Table 2", "## Table 3", "## Table 4", "## Table 5", "## Fig. 2"):
        assert heading in report
    assert "| Post-BN + CAN | " in report and "(n/a: 1 seed)" in report
    assert "![Fig. 2](fig2_response_histograms.png)" in report
    assert any(line.startswith("[1/2] seed 0 post_bn_can (Post-BN + CAN)") for line in lines)


def test_a_second_call_skips_finished_runs_and_rejects_other_settings(tiny_ablation, tiny_dataset):
    out, record, _ = tiny_ablation
    before = (out / "runs/seed0/pre_bn_can/train/last_generator.keras").stat().st_mtime_ns
    lines = []
    again = run_ablation(tiny_dataset, out, TINY, seeds=[0], only=["post_bn_can"], log=lines.append, figure=False)
    assert [r["classes"] for r in again["runs"]] == [r["classes"] for r in record["runs"]]
    assert sum("done, skipped" in line for line in lines) == 2
    assert (out / "runs/seed0/pre_bn_can/train/last_generator.keras").stat().st_mtime_ns == before
    with pytest.raises(InputError, match="steps: 4 vs 5"):
        run_ablation(tiny_dataset, out, TINY.__class__(**{**TINY.to_dict(), "steps": 5}), seeds=[0], log=lines.append)
    assert rebuild_report(out)["runs"] == again["runs"]


def test_a_finished_training_without_evaluation_is_evaluated_not_retrained(tiny_ablation, tiny_dataset):
    out, record, _ = tiny_ablation
    root = out / "runs/seed0/post_bn_can"
    generator = root / "train/last_generator.keras"
    before = generator.stat().st_mtime_ns
    (root / "result.json").unlink()
    (root / "evaluation/report.json").unlink()  # a half-written evaluation: redone
    result = run_one(VARIANTS_BY_KEY["post_bn_can"], 0, tiny_dataset, out, TINY, PreparedTestSplit(tiny_dataset))
    assert result["status"] == "finished" and "train_s" not in result["timings_s"]
    assert generator.stat().st_mtime_ns == before
    assert result["classes"] == record["runs"][0]["classes"]


def test_an_interrupted_run_is_resumed_from_its_checkpoint(tiny_dataset, tmp_path):
    variant = VARIANTS_BY_KEY["pre_bn_nocan"]
    train_dir = run_root(tmp_path, 0, variant.key) / "train"
    config = TINY.run_config(variant, 0, tiny_dataset, tmp_path / "cache")
    # What a run killed after step 2 of 4 leaves: config.json (4 steps) and a step-2 checkpoint, no summary.
    train(dataclasses.replace(config, train=dataclasses.replace(config.train, steps=2)), train_dir, verbose=0,
          log=lambda text: None)  # fmt: skip
    record = json.loads((train_dir / "config.json").read_text())
    record["run"]["train"]["steps"] = 4
    (train_dir / "config.json").write_text(json.dumps(record))
    (train_dir / "summary.json").unlink()
    lines = []
    result = run_one(variant, 0, tiny_dataset, tmp_path, TINY, PreparedTestSplit(tiny_dataset), log=lines.append)
    assert any("resuming at step 2 of 4" in line for line in lines)
    assert result["status"] == "finished" and result["train"]["steps_done"] == 4
    assert json.loads((train_dir / "summary.json").read_text())["steps_done"] == 4


@pytest.mark.parametrize("key, layer", [("att_dcn", "AttentionGate"), ("cond_dcn", "ModalityClassifier")])
def test_baseline_entries_build_train_one_step_and_serialize(key, layer, tiny_dataset, tmp_path):
    settings = AblationSettings(**{**TINY.to_dict(), "steps": 1})
    result = run_one(VARIANTS_BY_KEY[key], 0, tiny_dataset, tmp_path, settings, PreparedTestSplit(tiny_dataset))
    assert result["status"] == "finished" and result["train"]["steps_done"] == 1
    assert result["config"]["model"]["architecture"] == {"att_dcn": "attention", "cond_dcn": "conditional"}[key]
    generator = load_model(tmp_path / f"runs/seed0/{key}/train/last_generator.keras")
    assert any(type(l).__name__ == layer for l in generator.layers)
    assert generator.output_shape == (None, 32, 32, 2)
    assert 0 < result["sparsity"]["all"]["overall"] < 1
    keras.backend.clear_session()
