"""`cdseg experiment cross-domain` end to end on tiny runs: 2 folds of synthetic CT + MR phantoms, 32 px."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain import rebuild_results, run_cross_domain, run_one, run_root
from keras_cdseg.experiments.cross_domain_settings import VARIANTS_BY_KEY, CrossDomainSettings

TINY_CONFIG = {
    "data": {"image_size": 32, "target_spacing_mm": 12.0},
    "model": {"preset": "unet", "base_filters": 4, "depth": 2},
    "train": {"batch_size": 2, "val_max_cases": 1, "augment": False},
}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """4 CT + 4 MR phantoms (liver, spleen, kidneys), all in the training list: 2 folds of 2 + 2 test cases."""
    from keras_cdseg.data.phantoms.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("datasets") / "phantoms"
    write_synthetic_dataset(root, num_ct=4, num_mr=4, seed=0, size="small", num_test=0, progress=None)
    return root


@pytest.fixture(scope="module")
def tiny_settings(tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    return CrossDomainSettings(steps=4, num_folds=2, config_file=str(config), num_resamples=200)


@pytest.fixture(scope="module")
def benchmark(phantoms, tiny_settings, tmp_path_factory):
    out = tmp_path_factory.mktemp("cross_domain") / "results"
    lines = []
    record = run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], log=lines.append)
    return out, record, lines


def test_two_folds_two_variants_write_results(benchmark):
    out, record, lines = benchmark
    assert record["status"] == "finished" and record["progress"]["num_finished"] == 4
    assert json.loads((out / "results.json").read_text()) == record
    folds = json.loads((out / "folds.json").read_text())["folds"]
    assert [f["test_by_modality"] for f in folds] == [{"CT": 2, "MR": 2}] * 2
    assert record["organs"] == ["liver", "spleen", "kidneys"] and record["modalities"] == ["CT", "MR"]
    for fold in folds:
        result = json.loads((run_root(out, fold["fold"], "ct_only") / "result.json").read_text())
        split = result["split"]["train"] + result["split"]["val"]
        assert not set(split) & set(fold["test"])  # the fold's test cases are never trained on
        assert all(case_id.startswith("ct") for case_id in split)  # CT only
        assert sorted(row["case_id"] for row in result["cases"]) == fold["test"]  # evaluated on both modalities
        assert result["config"]["train"]["steps"] == 4 and result["config"]["train"]["quality_calibration"] is False
        assert result["config"]["model"]["base_filters"] == 4 and result["train"]["steps_done"] == 4
        # the recipe's values where the config file is silent, the benchmark's budget and calibration switch
        assert result["config"]["recipe"] == "real-cpu" and result["config"]["train"]["loss"] == "ce_dice"
        assert result["config"]["train"]["val_every"] == 4 and result["config"]["train"]["seed"] == 0
        assert set(result["largest_component_classes"]) == {"liver", "spleen", "kidneys"}
    zero_shot = [a for a in record["aggregates"] if (a["variant"], a["modality"], a["metric"]) == ("ct_only", "MR", "dice")]
    assert all(a["n"] == 4 and 0 <= a["mean"] <= 1 for a in zero_shot)
    assert lines[0].startswith("cross-domain: 2 folds x 2 variants = 4 trainings of 4 steps (0 already done")
    # each method run's model is measured on its fold's test scans for a later quality calibration
    for fold in folds:
        kept = json.loads((run_root(out, fold["fold"], "method") / "fold_calibration.json").read_text())
        assert sorted({s["case_id"] for s in kept["samples"]}) == fold["test"] and kept["variant"] == "method"
    assert not (run_root(out, 0, "ct_only") / "fold_calibration.json").exists()
    assert sum("calibration samples kept" in line for line in lines) == 2
    assert any(line.startswith("[1/4] fold 0 method: ") and "per run measured, 3 left" in line for line in lines)
    text = (out / "results.md").read_text()
    assert "**Status: finished; 4 of 4 runs finished.**" in text and "| Zero-shot: CT-only model on MR | 4 |" in text
    config_file = json.loads((out / "cross_domain.json").read_text())["config_file"]
    assert config_file.endswith("tiny.json") and record["config_file"] == config_file
    assert f"--recipe real-cpu --config {config_file} --steps 4" in text  # where the overrides came from


def test_a_second_call_skips_finished_runs_and_rejects_other_settings(benchmark, phantoms, tiny_settings):
    out, record, _ = benchmark
    generator = run_root(out, 1, "method") / "train" / "last_generator.keras"
    before = generator.stat().st_mtime_ns
    lines = []
    again = run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], log=lines.append)
    assert sum("done, skipped" in line for line in lines) == 4
    assert generator.stat().st_mtime_ns == before
    assert again["aggregates"] == record["aggregates"]
    with pytest.raises(InputError, match="other settings \\(steps: 4 vs 5\\)"):
        run_cross_domain(phantoms, out, dataclasses.replace(tiny_settings, steps=5), log=lines.append)
    with pytest.raises(InputError, match="other settings \\(num_folds: 2 vs 3\\)|fewer cases than folds"):
        run_cross_domain(phantoms, out, dataclasses.replace(tiny_settings, num_folds=3), log=lines.append)
    assert rebuild_results(out)["aggregates"] == record["aggregates"]
    # A benchmark recorded before a config field existed (here DataConfig.intensity) ran with its default:
    # it resumes, and a field this version does not know is still a difference.
    original = (out / "cross_domain.json").read_text()
    claim = json.loads(original)
    del claim["run_config"]["data"]["intensity"]
    (out / "cross_domain.json").write_text(json.dumps(claim))
    lines.clear()
    run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], log=lines.append)
    assert sum("done, skipped" in line for line in lines) == 4
    claim["run_config"]["data"]["window"] = 1
    (out / "cross_domain.json").write_text(json.dumps(claim))
    with pytest.raises(InputError, match="other run_config \\(data: "):
        run_cross_domain(phantoms, out, tiny_settings, log=lines.append)
    (out / "cross_domain.json").write_text(original)  # the module's benchmark, as the other tests expect it
    rebuild_results(out)


def test_a_call_for_the_method_only_keeps_the_plan_and_says_partial_while_others_are_outstanding(
    benchmark, phantoms, tiny_settings, tmp_path
):
    out = tmp_path / "results"
    shutil.copytree(benchmark[0], out)
    lines = []
    record = run_cross_domain(phantoms, out, tiny_settings, variants=["method"], log=lines.append)
    assert record["planned_variants"] == ["method", "ct_only"] and record["status"] == "finished"
    (run_root(out, 1, "ct_only") / "result.json").unlink()
    record = run_cross_domain(phantoms, out, tiny_settings, variants=["method"], log=lines.append)
    assert record["status"] == "partial" and record["progress"]["num_planned"] == 4
    assert lines[-2] == "cross-domain: 1 run(s) of variants or folds not asked for this time are still to do"
    assert "**Status: partial; 3 of 4 runs finished.**" in (out / "results.md").read_text()
    # A benchmark killed mid-run leaves "running"; rebuilding reads the status from the runs instead.
    stale = json.loads((out / "results.json").read_text()) | {"status": "running"}
    (out / "results.json").write_text(json.dumps(stale))
    assert rebuild_results(out)["status"] == "partial"


def test_one_fold_at_a_time_runs_only_that_fold_and_the_rest_stay_planned(benchmark, phantoms, tiny_settings, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(benchmark[0], out)
    for fold in (0, 1):
        shutil.rmtree(run_root(out, fold, "ct_only"))
    lines = []
    record = run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], only_folds=[1], log=lines.append)
    assert lines[0].startswith("cross-domain: fold(s) 1 x 2 variants = 2 trainings of 4 steps (1 already done")
    assert (run_root(out, 1, "ct_only") / "result.json").exists() and not run_root(out, 0, "ct_only").exists()
    assert record["status"] == "partial" and record["progress"]["num_finished"] == 3
    record = run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], only_folds=[0], log=lines.append)
    assert record["status"] == "finished" and record["progress"]["num_finished"] == 4
    with pytest.raises(InputError, match="no fold 2 in a 2-fold split \\(folds are 0..1\\)"):
        run_cross_domain(phantoms, out, tiny_settings, only_folds=[0, 2], log=lines.append)
    result = CliRunner().invoke(cli, ["experiment", "cross-domain", "--data", str(phantoms), "--out", str(out),
                                      "--folds", "2", "--fold", "5"])  # fmt: skip
    assert result.exit_code == 2 and result.output == "Error: --fold: no fold 5 in a 2-fold split (folds are 0..1)\n"


def test_a_finished_training_without_result_is_evaluated_not_retrained(benchmark, tiny_settings):
    out, record, _ = benchmark
    root = run_root(out, 0, "ct_only")
    generator = root / "train" / "last_generator.keras"
    before, old = generator.stat().st_mtime_ns, json.loads((root / "result.json").read_text())
    (root / "result.json").unlink()
    (root / "evaluation" / "report.json").unlink()  # a half-written evaluation: redone
    result = run_one(VARIANTS_BY_KEY["ct_only"], 0, out, tiny_settings, log=lambda text: None)
    assert result["status"] == "finished" and "train_s" not in result["timings_s"]
    assert generator.stat().st_mtime_ns == before
    assert result["cases"] == old["cases"]


def test_reevaluate_redoes_only_evaluations_of_an_older_prediction_path(benchmark, phantoms, tiny_settings, tmp_path):
    from keras_cdseg.inference.volume import LABEL_RESTORATION

    out = tmp_path / "results"
    shutil.copytree(benchmark[0], out)
    root = run_root(out, 1, "ct_only")
    current = json.loads((root / "result.json").read_text())
    assert current["label_restoration"] == LABEL_RESTORATION
    # What an earlier version left: no label_restoration in the report, other Dice values in result.json.
    report = json.loads((root / "evaluation" / "report.json").read_text())
    del report["settings"]["label_restoration"]
    (root / "evaluation" / "report.json").write_text(json.dumps(report))
    stale = {key: value for key, value in current.items() if key != "label_restoration"}
    stale["cases"] = json.loads(json.dumps(current["cases"]))
    stale["cases"][0]["organs"]["liver"]["dice"] = 0.123
    (root / "result.json").write_text(json.dumps(stale))
    (root / "evaluation.new").mkdir()  # a swap interrupted before: cleared
    generator = root / "train" / "last_generator.keras"
    before = generator.stat().st_mtime_ns

    lines = []
    record = run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], log=lines.append)
    assert sum("evaluating again" in line for line in lines) == 0  # without the flag: kept as it is
    assert json.loads((root / "result.json").read_text())["cases"][0]["organs"]["liver"]["dice"] == 0.123
    lines = []
    record = run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], log=lines.append, reevaluate=True)
    assert [line.split(":")[0] for line in lines if "evaluating again" in line] == ["[4/4] fold 1 ct_only"]
    result = json.loads((root / "result.json").read_text())
    assert result["cases"] == current["cases"] and result["label_restoration"] == LABEL_RESTORATION
    assert result["train"] == current["train"] and generator.stat().st_mtime_ns == before
    assert not (root / "evaluation.new").exists() and not (root / "evaluation.old").exists()
    assert record["aggregates"] == benchmark[1]["aggregates"]
    lines = []
    run_cross_domain(phantoms, out, tiny_settings, variants=["ct_only"], log=lines.append, reevaluate=True)
    assert sum("evaluating again" in line for line in lines) == 0 and sum("done, skipped" in line for line in lines) == 4


def test_a_killed_training_resumes_from_its_checkpoint(benchmark, tiny_settings, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(benchmark[0], out)
    root = run_root(out, 1, "method")
    # What a run killed after step 4 of 6 leaves: config.json (6 steps), a step-4 checkpoint, no summary, no result.
    record = json.loads((root / "train" / "config.json").read_text())
    record["run"]["train"]["steps"] = 6
    (root / "train" / "config.json").write_text(json.dumps(record))
    for name in ("train/summary.json", "result.json"):
        (root / name).unlink()
    shutil.rmtree(root / "evaluation")
    lines = []
    result = run_one(VARIANTS_BY_KEY["method"], 1, out, tiny_settings, log=lines.append)
    assert any("resuming at step 4 of 6" in line for line in lines)
    assert result["status"] == "finished" and result["train"]["steps_done"] == 6 and result["timings_s"]["train_s"] > 0
    assert len(result["cases"]) == 4


def test_cli_errors_are_one_line_and_report_only_rebuilds(benchmark, phantoms, tmp_path):
    out, record, _ = benchmark

    def invoke(*args):
        return CliRunner().invoke(cli, ["experiment", "cross-domain", *args])

    result = invoke("--out", str(out), "--report-only")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["planned"] >= 4
    result = invoke("--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and result.output == "Error: --data: required (the dataset directory)\n"
    result = invoke("--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "dataset directory not found" in result.output
    result = invoke("--data", str(phantoms), "--out", str(tmp_path / "r"), "--folds", "5")
    assert result.exit_code == 2 and "fewer cases than folds (CT: 4, MR: 4; --folds 5)" in result.output
    assert len(result.output.splitlines()) == 1
    result = invoke("--data", str(phantoms), "--out", str(tmp_path / "r"), "--variants", "method,pre_gn")
    assert result.exit_code == 2 and "unknown variant(s) ['pre_gn']" in result.output
    result = invoke("--data", str(phantoms), "--out", str(out), "--folds", "2", "--steps", "7")
    assert result.exit_code == 2 and "holds a benchmark with other settings (" in result.output
    assert "steps: 4 vs 7" in result.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = invoke("--data", str(phantoms), "--out", str(tmp_path / "busy"))
    assert result.exit_code == 2 and "holds no cross-domain benchmark" in result.output
    result = invoke("--out", str(tmp_path / "busy"), "--report-only")
    assert result.exit_code == 2 and "not a cross-domain results directory" in result.output
    assert "--variants" in invoke("--help").output


def test_a_moved_dataset_with_the_same_cases_resumes_and_other_cases_are_refused(benchmark, phantoms, tiny_settings, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(benchmark[0], out)
    moved = tmp_path / "prepared_again"  # the same dataset prepared again elsewhere (a new session, a new machine)
    shutil.copytree(phantoms, moved)
    lines = []
    record = run_cross_domain(moved, out, tiny_settings, variants=["ct_only"], log=lines.append)
    assert f"moved from {phantoms} to {moved}; its cases and folds match, resuming" in lines[0]
    assert sum("done, skipped" in line for line in lines) == 4 and record["status"] == "finished"
    assert json.loads((out / "cross_domain.json").read_text())["data_dir"] == str(moved)
    fold_cases = json.loads((out / "folds" / "fold0" / "dataset.json").read_text())["training"]
    assert all(entry["image"].startswith(str(moved)) for entry in fold_cases)
    dataset = json.loads((moved / "dataset.json").read_text())
    dataset["training"] = dataset["training"][1:]  # one case fewer: other folds, not the same benchmark
    (moved / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(InputError, match="training cases changed since these folds were made"):
        run_cross_domain(moved, out, tiny_settings, variants=["ct_only"], log=lines.append)


def test_the_quality_estimate_is_calibrated_on_every_folds_own_test_scans(benchmark, tmp_path):
    from keras_cdseg.experiments.fold_calibration import calibrate_from_folds
    from keras_cdseg.inference.quality.degradations import CALIBRATION
    from keras_cdseg.inference.quality.estimate import QualityEstimator
    from keras_cdseg.inference.volume import LABEL_RESTORATION
    from keras_cdseg.io_utils import write_json_atomic

    out, _, _ = benchmark
    folds = json.loads((out / "folds.json").read_text())["folds"]
    lines = []
    record = calibrate_from_folds(out, "ct_only", degradations=CALIBRATION[:2], perturbations=False, log=lines.append)
    assert record["source"]["folds"] == [0, 1] and record["source"]["variant"] == "ct_only"
    # every scan once, by the fold model that never trained on it, clean and under each degradation
    assert record["num_cases"] == 8 and len(record["samples"]) == 8 * 3
    for sample in record["samples"]:
        assert sample["case_id"] in folds[sample["fold"]]["test"]
    assert record["model"]["num_samples"] == 24 and record["organ"]["name"] == "liver"
    QualityEstimator(record)  # a usable quality.json record
    checked = record["cross_validation"]  # each fold scored by the estimate of the other fold
    assert checked["all_samples"]["num_samples"] == 24 and len(checked["cases"]) == 8
    assert lines[0].startswith("fold 0: ct_only on its 4 test scans x 3 variants")

    # Each fold's samples are kept beside its result.json: a checkout without the train/ directories pools them.
    moved = tmp_path / "results"
    shutil.copytree(out, moved)
    for fold in (0, 1):
        shutil.rmtree(run_root(moved, fold, "ct_only") / "train")
    again = calibrate_from_folds(moved, "ct_only", degradations=CALIBRATION[:2], perturbations=False, log=lines.append)
    assert again["samples"] == record["samples"] and again["model"] == record["model"]
    assert again["source"]["label_restoration"] == LABEL_RESTORATION
    # Samples an older prediction path made are not pooled with today's: left out without the model (logged
    # with the reason), measured again where its train/ directory is.
    kept = run_root(moved, 1, "ct_only") / "fold_calibration.json"
    write_json_atomic(kept, json.loads(kept.read_text()) | {"label_restoration": "arg-max, nearest neighbour"})
    older = calibrate_from_folds(moved, "ct_only", degradations=CALIBRATION[:2], perturbations=False, log=lines.append)
    assert older["source"]["folds"] == [0] and older["num_cases"] == 4
    assert ("fold 1: a fold_calibration.json made with other settings (label_restoration: 'arg-max, nearest neighbour' "
            f"vs '{LABEL_RESTORATION}') and no finished ct_only run with its train/ directory to measure again; left out") in lines
    shutil.copytree(run_root(out, 1, "ct_only") / "train", run_root(moved, 1, "ct_only") / "train")
    measured = calibrate_from_folds(moved, "ct_only", degradations=CALIBRATION[:2], perturbations=False, log=lines.append)
    assert measured["samples"] == record["samples"]
    assert json.loads(kept.read_text())["label_restoration"] == LABEL_RESTORATION
    shutil.rmtree(run_root(moved, 1, "ct_only") / "train")
    # Other calibration settings need the models again: a fold without its train/ directory is left out.
    (run_root(moved, 0, "ct_only") / "fold_calibration.json").unlink()
    shutil.copytree(run_root(out, 0, "ct_only") / "train", run_root(moved, 0, "ct_only") / "train")
    other = calibrate_from_folds(moved, "ct_only", degradations=CALIBRATION[:1], perturbations=False, log=lines.append)
    assert other["source"]["folds"] == [0] and other["num_cases"] == 4 and len(other["samples"]) == 8
    assert any(line.startswith("fold 1: a fold_calibration.json made with other settings (degradations: [") for line in lines[-3:])
    shutil.rmtree(run_root(moved, 0, "ct_only") / "train")
    with pytest.raises(InputError, match="no fold of 'ct_only' has a fold_calibration.json made with today's settings"):
        calibrate_from_folds(moved, "ct_only", degradations=CALIBRATION[1:2], perturbations=False, log=lines.append)


def test_a_training_seed_repeat_shares_the_folds_and_compares_case_by_case(benchmark, phantoms, tiny_settings, tmp_path):
    out, first, _ = benchmark
    repeat = dataclasses.replace(tiny_settings, train_seed=1)
    record = run_cross_domain(phantoms, tmp_path / "seed1", repeat, variants=["method"], log=lambda _: None,
                              fold_calibration=False)  # fmt: skip
    assert record["folds"] == first["folds"] and record["settings"]["train_seed"] == 1
    for fold in (0, 1):
        result = json.loads((run_root(tmp_path / "seed1", fold, "method") / "result.json").read_text())
        assert result["config"]["train"]["seed"] == 1
    assert "--seed 0 --train-seed 1 --variants method" in (tmp_path / "seed1" / "results.md").read_text()
    assert "train_seed" not in first["settings"]  # directories made without the option still resume

    def invoke(*dirs):
        return CliRunner().invoke(cli, ["experiment", "seeds", *map(str, dirs), "--out", str(tmp_path / "cmp")])

    result = invoke(out, tmp_path / "seed1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["repeats"] == [0, 1]
    compared = json.loads((tmp_path / "cmp" / "seed_repeats.json").read_text())
    assert list(compared["variants"]) == ["method"]  # the only model both directories trained
    cases = sorted(c for fold in first["folds"] for c in fold["test"] if c.startswith("ct"))
    entry = next(e for e in compared["entries"] if (e["modality"], e["organ"], e["metric"]) == ("CT", "mean", "dice"))
    assert entry["n_cases"] == len(cases) and [r["train_seed"] for r in entry["repeats"]] == [0, 1]
    assert "| One network: pre-norm BN + CAN (the method) | CT | 1 − 0 |" in (tmp_path / "cmp" / "seed_repeats.md").read_text()
    result = invoke(out, out)
    assert result.exit_code == 2 and "has training seed 0, like" in result.output and len(result.output.splitlines()) == 1
    result = invoke(out)
    assert result.exit_code == 2 and "compare at least two repeats" in result.output

    # scripts/check_seed_ensemble.py: averaging a model with itself scores exactly as the model alone does
    # (its probabilities and the benchmark's evaluation), and two seeds give an ensemble of both repeats.
    def ensemble(*dirs, name):
        script = Path(__file__).resolve().parents[2] / "scripts" / "check_seed_ensemble.py"
        command = [sys.executable, str(script), *map(str, dirs), "--variant", "method", "--out", str(tmp_path / name)]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads((tmp_path / name).read_text())["dice"]

    same = ensemble(out, out, name="self.json")
    for modality in ("CT", "MR"):
        row = same[modality]["organs"]["mean"]
        assert row["repeats"][0] == row["repeats"][1] == row["ensemble"] and row["ensemble_minus_repeats_mean"] == 0
    single = entry["repeats"][0]["mean"]
    assert abs(same["CT"]["organs"]["mean"]["ensemble"] - single) < 1e-4 and same["CT"]["n"] == len(cases)
    both = ensemble(out, tmp_path / "seed1", name="both.json")["CT"]["organs"]["mean"]
    assert [round(r, 4) for r in both["repeats"]] == [round(r["mean"], 4) for r in entry["repeats"]]
    assert 0 <= both["ensemble"] <= 1


def test_compare_benchmarks_pairs_the_scans_both_tested_and_names_setting_changes(benchmark, tmp_path):
    out = benchmark[0]
    script = Path(__file__).resolve().parents[2] / "scripts" / "compare_benchmarks.py"

    def compare(other, name):
        done = subprocess.run([sys.executable, str(script), str(out), str(other), "--out", str(tmp_path / name)],
                              capture_output=True, text=True)  # fmt: skip
        return done, (json.loads((tmp_path / name).read_text()) if done.returncode == 0 else None)

    done, same = compare(out, "same.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert same["setting_differences"] == {} and same["comparisons"]
    assert all(e["other_minus_reference"]["mean"] == 0 for e in same["comparisons"])

    # Another budget with only fold 0 finished and one scan's liver 0.1 lower: paired on fold 0's scans alone.
    record = json.loads((out / "results.json").read_text())
    record["settings"]["steps"] = 40
    record["cases"] = [row for row in record["cases"] if row["fold"] == 0]
    lowered = next(r for r in record["cases"] if r["variant"] == "method" and r["modality"] == "CT")
    lowered["organs"]["liver"]["dice"] -= 0.1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text(json.dumps(record))
    done, other = compare(tmp_path / "other", "other.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert other["setting_differences"] == {"settings.steps": [4, 40]} and "settings.steps: 4 -> 40" in done.stdout
    liver = next(e for e in other["comparisons"] if (e["modality"], e["organ"], e["metric"]) == ("CT", "liver", "dice"))
    fold0_ct = [c for c in record["folds"][0]["test"] if c.startswith("ct")]
    assert liver["n_cases"] == len(fold0_ct)
    assert liver["other_minus_reference"]["mean"] == pytest.approx(-0.1 / len(fold0_ct))
    assert {row["case_id"] for row in other["per_case_mean_dice"]} == set(record["folds"][0]["test"])

    record["folds"][0]["test"], record["folds"][1]["test"] = record["folds"][1]["test"], record["folds"][0]["test"]
    (tmp_path / "other" / "results.json").write_text(json.dumps(record))
    done, _ = compare(tmp_path / "other", "refused.json")
    assert done.returncode == 2 and done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1


def test_the_largest_component_check_scores_each_folds_own_predictions_with_and_without_the_step(benchmark, tmp_path):
    from keras_cdseg.experiments.postprocessing_check import FOLD_POSTPROCESSING_FILE, check_postprocessing

    out = benchmark[0]
    lines = []
    record = check_postprocessing(out, "method", log=lines.append)
    assert record["folds"] == [0, 1] and len(record["cases"]) == 8
    evaluated = {(fold, row["case_id"]): row["organs"]
                 for fold in (0, 1) for row in json.loads((run_root(out, fold, "method") / "result.json").read_text())["cases"]}  # fmt: skip
    for case in record["cases"]:
        for organ, scores in case["organs"].items():
            # with the step, the benchmark's own evaluation of that scan (the same prediction path)
            assert scores["largest_component"]["dice"] == pytest.approx(evaluated[(case["fold"], case["case_id"])][organ]["dice"])
            if not scores["changed"]:
                assert scores["largest_component"] == scores["as_predicted"]
    liver = record["organs"]["liver"]
    assert set(liver["by_modality"]) == {"all", "CT", "MR"} and liver["by_modality"]["all"]["n"] == 8
    assert isinstance(liver["keep_largest_component"], bool)

    # Kept beside result.json: a checkout without the train/ directories pools the same scores.
    moved = tmp_path / "results"
    shutil.copytree(out, moved)
    for fold in (0, 1):
        assert (run_root(moved, fold, "method") / FOLD_POSTPROCESSING_FILE).is_file()
        shutil.rmtree(run_root(moved, fold, "method") / "train")
    assert check_postprocessing(moved, "method", log=lines.append)["organs"] == record["organs"]
    script = Path(__file__).resolve().parents[2] / "scripts" / "check_postprocessing.py"
    done = subprocess.run([sys.executable, str(script), str(moved)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (moved / "postprocessing_check.json").is_file() and "| liver | all 8 |" in done.stdout
    done = subprocess.run([sys.executable, str(script), str(moved), "--variant", "mr_only"], capture_output=True, text=True)
    # each fold's "left out" progress line, then one error line naming the directory; no traceback
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"Error: {moved}: no fold of 'mr_only' has a fold_postprocessing.json or a finished run with its train/ directory"


def test_the_field_of_view_check_scores_each_folds_networks_on_their_own_scans(benchmark, tmp_path):
    out = benchmark[0]
    script = Path(__file__).resolve().parents[2] / "scripts" / "check_field_of_view.py"
    done = subprocess.run([sys.executable, str(script), str(out), "--out", str(tmp_path / "fov.json")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "fov.json").read_text())
    assert len(record["cases"]) == 8 and {case["fold"] for case in record["cases"]} == {0, 1}
    for case in record["cases"]:
        assert set(case["window"]) == {"liver", "spleen", "kidneys"}  # the phantoms' organs
        if case["canvas_px"] == case["window_px"]:  # the window holds the scan: one prediction, no cut
            assert case["canvas"] == case["window"] and case["warnings"] == []
    assert record["summary"]["all"]["scans"] == 8
    # No fold network left (a committed copy under docs/results): one line, exit 2.
    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("train"))
    done = subprocess.run([sys.executable, str(script), str(bare), "--out", str(tmp_path / "none.json")], capture_output=True, text=True)
    assert done.returncode == 2 and "no fold has its network" in done.stderr and "Traceback" not in done.stderr
