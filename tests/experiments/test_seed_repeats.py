"""seed_repeats.json / .md from hand-made benchmark results (no training): pairing, pooling, refusals."""

import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain_results import build_results, find
from keras_cdseg.experiments.seed_repeats import compare_repeats, write_seed_repeats
from keras_cdseg.io_utils import write_json_atomic
from tests.experiments.test_cross_domain_results import BASE, CLAIM, FOLDS, result


def repeat_dir(root, name, train_seed, method_shift, variants=("method", "ct_only"), folds=FOLDS, ct_only_shift=0.0,
               ct_only_folds=(0, 1)):
    """A results directory whose method's liver Dice is BASE + method_shift on CT cases (MR unchanged)."""
    claim = {**CLAIM, "settings": {**CLAIM["settings"], **({} if train_seed is None else {"train_seed": train_seed})}}
    shifted = {c: v + (method_shift if c.startswith("ct") else 0.0) for c, v in BASE.items()}
    results = [result(f, "method", shifted) for f in (0, 1)]
    if "ct_only" in variants:
        results += [result(f, "ct_only", {c: v - 0.05 + ct_only_shift for c, v in BASE.items()}) for f in ct_only_folds]
    path = root / name
    path.mkdir()
    write_json_atomic(path / "results.json", build_results(claim, folds, results, list(variants), status="finished"))
    return path


@pytest.fixture
def repeats(tmp_path):
    return [repeat_dir(tmp_path, "seed0", None, 0.0), repeat_dir(tmp_path, "seed1", 1, 0.04, variants=("method",))]


def test_a_repeat_pairs_by_case_and_pools_the_method(repeats):
    record = compare_repeats(repeats)
    assert [r["train_seed"] for r in record["repeats"]] == [0, 1] and list(record["variants"]) == ["method"]
    liver_ct = find(record["entries"], variant="method", modality="CT", organ="liver", metric="dice")
    assert liver_ct["n_cases"] == 4
    assert [r["mean"] for r in liver_ct["repeats"]] == pytest.approx([0.875, 0.915])
    (difference,) = liver_ct["seed_differences"]
    assert difference["mean"] == pytest.approx(0.04) and difference["low"] == pytest.approx(0.04)  # every case moved
    assert (difference["train_seed"], difference["minus_train_seed"]) == (1, 0)
    assert liver_ct["pooled"]["mean"] == pytest.approx(0.895)
    liver_mr = find(record["entries"], variant="method", modality="MR", organ="liver", metric="dice")
    assert liver_mr["seed_differences"][0]["mean"] == pytest.approx(0.0) and liver_mr["seed_differences"][0]["wilcoxon_p"] == 1.0
    # method pooled over seeds (BASE + 0.02 on CT) minus ct_only (BASE - 0.05), beside the single-seed +0.05
    comparison = find(record["pooled_comparisons"], variant="ct_only", modality="CT", organ="liver", metric="dice")
    assert comparison["pooled"]["mean"] == pytest.approx(0.07) and comparison["single_seed"]["mean"] == pytest.approx(0.05)


def test_a_model_repeated_too_is_compared_averaged_over_its_own_repeats(tmp_path):
    dirs = [repeat_dir(tmp_path, "seed0", None, 0.0), repeat_dir(tmp_path, "seed1", 1, 0.04, ct_only_shift=0.02)]
    record = compare_repeats(dirs)
    assert list(record["variants"]) == ["method", "ct_only"]
    comparison = find(record["pooled_comparisons"], variant="ct_only", modality="CT", organ="liver", metric="dice")
    # (BASE + 0.02) - (BASE - 0.05 + 0.01): both sides averaged over seeds 0 and 1
    assert comparison["model_repeats"] == 2 and comparison["pooled"]["mean"] == pytest.approx(0.06)
    assert comparison["single_seed"]["mean"] == pytest.approx(0.05)
    write_seed_repeats(dirs, tmp_path / "out")
    assert "| Separate models: CT-only model (2 seeds) | CT | 4 | +0.050" in (tmp_path / "out" / "seed_repeats.md").read_text()
    # a repeat cut short: both comparisons on the cases its finished folds tested (fold 0: ct0, ct1)
    partial = repeat_dir(tmp_path, "seed2", 2, 0.0, ct_only_shift=0.02, ct_only_folds=(0,))
    comparison = find(compare_repeats([dirs[0], partial])["pooled_comparisons"], variant="ct_only", modality="CT",
                      organ="liver", metric="dice")  # fmt: skip
    assert comparison["pooled"]["n"] == comparison["single_seed"]["n"] == 2


def test_the_markdown_reads_the_seed_noise_beside_the_model_differences(repeats, tmp_path):
    write_seed_repeats(repeats, tmp_path / "out")
    text = (tmp_path / "out" / "seed_repeats.md").read_text()
    method = "| One network: pre-norm BN + CAN (the method) |"
    assert f"{method} CT | 1 − 0 | 4 | +0.040 [+0.040, +0.040] * |" in text
    assert f"{method} CT | mean of 2 | 4 | 0.895 [" in text
    ct_only = next(line for line in text.splitlines() if line.startswith("| Separate models: CT-only model | CT |"))
    assert "| 4 | +0.050 [" in ct_only and ct_only.endswith("| 0.040 |")  # the method's own seed difference, beside
    assert "| Zero-shot: CT-only model on MR | MR | 4 |" in text


def test_repeats_of_other_folds_settings_or_the_same_seed_are_refused(tmp_path):
    first = repeat_dir(tmp_path, "a", None, 0.0)
    other_folds = [{**f, "test": f["train"], "train": f["test"]} for f in FOLDS]
    with pytest.raises(InputError, match="its folds differ"):
        compare_repeats([first, repeat_dir(tmp_path, "b", 1, 0.0, folds=other_folds)])
    same = repeat_dir(tmp_path, "c", 0, 0.0)
    with pytest.raises(InputError, match="has training seed 0, like"):
        compare_repeats([first, same])
    with pytest.raises(InputError, match="no results.json"):
        compare_repeats([first, tmp_path])
    with pytest.raises(InputError, match="results directory not found"):
        compare_repeats([first, tmp_path / "missing"])
    with pytest.raises(InputError, match="at least two repeats"):
        compare_repeats([first])
