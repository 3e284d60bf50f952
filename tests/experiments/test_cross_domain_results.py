"""results.json and results.md of the cross-domain benchmark, from hand-made run results (no training)."""

import pytest

from keras_cdseg.experiments.cross_domain_report import render_results
from keras_cdseg.experiments.cross_domain_results import build_results, find

ORGANS = ("liver", "spleen")
CLAIM = {
    "data_dir": "/data/abdomen",
    "settings": {"recipe": "real-cpu", "steps": 20, "num_folds": 2, "seed": 0, "quality_calibration": False,
                 "num_resamples": 500},
    "run_config": {"data": {"image_size": 32, "target_spacing_mm": 12.0, "context": 1},
                   "model": {"preset": "unet", "base_filters": 4, "depth": 2},
                   "train": {"batch_size": 2, "learning_rate": 0.001, "adversarial_weight": 0.001}},
}  # fmt: skip
FOLDS = [
    {"fold": 0, "test": ["ct0", "ct1", "mr0", "mr1"], "train": ["ct2", "ct3", "mr2", "mr3"],
     "test_by_modality": {"CT": 2, "MR": 2}},
    {"fold": 1, "test": ["ct2", "ct3", "mr2", "mr3"], "train": ["ct0", "ct1", "mr0", "mr1"],
     "test_by_modality": {"CT": 2, "MR": 2}},
]  # fmt: skip


def organ(dice, assd=2.0, mssd=10.0, flags=()):
    return {"dice": dice, "assd_mm": assd, "mssd_mm": mssd, "flags": list(flags)}


def result(fold, variant, dice_by_case, missed=()):
    """A finished run whose liver Dice per case is given; spleen Dice = liver - 0.1 (or not found)."""
    cases = []
    for case_id in FOLDS[fold]["test"]:
        dice = dice_by_case[case_id]
        spleen = organ(0.0, None, None, ["empty_pred"]) if case_id in missed else organ(dice - 0.1)
        cases.append({"case_id": case_id, "modality": case_id[:2].upper(),
                      "organs": {"liver": organ(dice), "spleen": spleen}})  # fmt: skip
    return {"fold": fold, "variant": variant, "label": variant, "status": "finished", "run_dir": "x",
            "train": {"steps_done": 20}, "cases": cases, "timings_s": {"train_s": 60.0, "evaluate_s": 3.0}}  # fmt: skip


BASE = {"ct0": 0.90, "ct1": 0.80, "ct2": 0.85, "ct3": 0.95, "mr0": 0.70, "mr1": 0.75, "mr2": 0.80, "mr3": 0.85}


@pytest.fixture(scope="module")
def record():
    results = [result(f, "method", BASE) for f in (0, 1)]
    results += [result(f, "ct_only", {c: v - (0.05 if c.startswith("ct") else 0.5) for c, v in BASE.items()},
                       missed=("mr0",)) for f in (0, 1)]  # fmt: skip
    results += [result(0, "post_norm", {c: v + 0.02 for c, v in BASE.items()})]  # fold 1 not finished
    results += [{"fold": 0, "variant": "mr_only", "label": "mr_only", "status": "failed", "error": "loss is nan"}]
    return build_results(CLAIM, FOLDS, results, ["method", "post_norm", "ct_only", "mr_only"], status="running")


def test_aggregates_are_means_over_cases_with_bootstrap_intervals(record):
    liver_ct = find(record["aggregates"], variant="method", modality="CT", organ="liver", metric="dice")
    assert liver_ct["n"] == 4 and liver_ct["mean"] == pytest.approx(0.875)
    assert liver_ct["low"] < 0.875 < liver_ct["high"]
    mean_ct = find(record["aggregates"], variant="method", modality="CT", organ="mean", metric="dice")
    assert mean_ct["mean"] == pytest.approx(0.825)  # per-case mean of liver and spleen (= liver - 0.1)
    assd = find(record["aggregates"], variant="method", modality="MR", organ="mean", metric="assd_mm")
    assert (assd["mean"], assd["low"], assd["high"]) == (2.0, 2.0, 2.0)


def test_a_missed_organ_scores_dice_zero_and_is_counted_out_of_distances(record):
    spleen = {m: find(record["aggregates"], variant="ct_only", modality="MR", organ="spleen", metric=m)
              for m in ("dice", "assd_mm")}  # fmt: skip
    assert spleen["dice"]["n"] == 4 and spleen["dice"]["n_missing"] == 0
    assert spleen["assd_mm"]["n"] == 3 and spleen["assd_mm"]["n_missing"] == 1
    mean_assd = find(record["aggregates"], variant="ct_only", modality="MR", organ="mean", metric="assd_mm")
    assert mean_assd["n"] == 3 and mean_assd["n_missing"] == 1


def test_paired_comparisons_are_method_minus_model_on_shared_cases(record):
    zero_shot = find(record["comparisons"], variant="ct_only", modality="MR", organ="liver", metric="dice")
    assert zero_shot["difference"] == "method - ct_only" and zero_shot["n"] == 4
    assert zero_shot["mean"] == pytest.approx(0.5) and zero_shot["low"] > 0
    separate = find(record["comparisons"], variant="ct_only", modality="CT", organ="liver", metric="dice")
    assert separate["mean"] == pytest.approx(0.05)
    partial = find(record["comparisons"], variant="post_norm", modality="CT", organ="liver", metric="dice")
    assert partial["n"] == 2 and partial["mean"] == pytest.approx(-0.02)  # only fold 0 is finished


def test_progress_runs_and_timings_tell_what_is_finished(record):
    assert record["progress"]["num_planned"] == 8 and record["progress"]["num_finished"] == 5
    assert record["progress"]["num_failed"] == 1
    assert record["progress"]["folds_finished"] == {"method": [0, 1], "post_norm": [0], "ct_only": [0, 1],
                                                    "mr_only": []}  # fmt: skip
    statuses = {(r["fold"], r["variant"]): r["status"] for r in record["runs"]}
    assert statuses[(1, "post_norm")] == "pending" and statuses[(0, "mr_only")] == "failed"
    assert record["timings_s"]["train_s_mean"] == 60.0 and record["organs"] == list(ORGANS)
    assert len(record["cases"]) == 5 * 4


def test_results_md_has_the_tables_anchors_and_status(record):
    text = render_results(record)
    assert "**Status: running; 5 of 8 runs finished, 1 failed.**" in text
    assert "post_norm 1/2" in text and "mr_only 0/2" in text
    for heading in ("## Dice, CT", "## Dice, MR", "## ASSD (mm), CT", "## MSSD (mm), MR", "## Paired comparisons",
                    "## Runs", "## Settings"):  # fmt: skip
        assert heading in text
    assert "cdseg experiment cross-domain --data /data/abdomen --out RESULTS_DIR --folds 2 --recipe real-cpu" in text
    assert "| *Anchor: Per-modality supervised 2D models (SIFA's upper bound" in text
    assert "| 0.887 |" in text and "| 0.873 |" in text and "0.88 ± 0.15" in text
    ct_table = text.split("## Dice, CT")[1].split("##")[0]
    assert "| Separate models: CT-only model | 4 | 0.825 [" in ct_table
    assert "Zero-shot: MR-only model on CT | 0 | n/a" in ct_table
    mr_table = text.split("## Dice, MR")[1].split("##")[0]
    assert "| Zero-shot: CT-only model on MR | 4 |" in mr_table and "Separate models: MR-only" in mr_table
    assert "(1 missed)" in text.split("## ASSD (mm), MR")[1].split("##")[0]
    assert "| Zero-shot: CT-only model on MR | MR | Dice | 4 | +0.500 [" in text
    assert "| 0 | 2 CT, 2 MR | finished, 1.0 min | finished, 1.0 min | finished, 1.0 min | failed |" in text


def test_a_benchmark_with_nothing_finished_still_renders():
    record = build_results(CLAIM, FOLDS, [], ["method", "ct_only"], status="running")
    assert record["progress"]["num_finished"] == 0 and record["organs"] == [] and record["cases"] == []
    text = render_results(record)
    assert "**Status: running; 0 of 4 runs finished.**" in text and "none measured yet" in text
    assert "| 1 | 2 CT, 2 MR | pending | pending |" in text


def test_the_command_names_the_config_file_and_the_model_choice_follows_the_validation_split(record):
    text = render_results(record)
    assert "--recipe real-cpu --steps 20" in text and "--config" not in text
    assert "validation split (best-generator selection)" in text
    claim = CLAIM | {"config_file": "scripts/bundled_model.yaml",
                     "run_config": CLAIM["run_config"] | {"train": CLAIM["run_config"]["train"] | {"val_fraction": 0.0}}}
    text = render_results(build_results(claim, FOLDS, [], ["method"], status="running"))
    assert "--recipe real-cpu --config scripts/bundled_model.yaml --steps 20 --seed 0" in text
    assert "No scan is held out for validation (val_fraction 0)" in text and "best-generator" not in text
