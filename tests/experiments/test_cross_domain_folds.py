"""K-fold split by patient, stratified by modality: disjoint, complete, balanced, deterministic; fold datasets."""

import json

import pytest

from keras_cdseg.data.dataset import Case, load_dataset
from keras_cdseg.errors import InputError
from keras_cdseg.experiments.folds import make_folds, write_fold_dataset


def cases(num_ct=20, num_mr=14):
    return [Case(f"ct_{i:02d}", None, None, "CT") for i in range(num_ct)] + [
        Case(f"mr_{i:02d}", None, None, "MR") for i in range(num_mr)
    ]


@pytest.mark.parametrize("num_folds", [2, 3, 4, 5])
def test_every_case_is_tested_exactly_once_and_each_modality_is_spread_evenly(num_folds):
    folds = make_folds(cases(), num_folds, seed=0)
    assert [f["fold"] for f in folds] == list(range(num_folds))
    tested = [case_id for fold in folds for case_id in fold["test"]]
    assert sorted(tested) == sorted(c.case_id for c in cases())  # disjoint and complete
    for fold in folds:
        assert not set(fold["test"]) & set(fold["train"])
        assert sorted(fold["test"] + fold["train"]) == sorted(c.case_id for c in cases())
        for modality, total in (("CT", 20), ("MR", 14)):
            n = sum(case_id.startswith(modality.lower()) for case_id in fold["test"])
            assert n in (total // num_folds, -(-total // num_folds)) and fold["test_by_modality"][modality] == n
    sizes = [len(f["test"]) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_the_split_depends_on_the_seed_only_not_on_the_case_order():
    folds = make_folds(cases(), 4, seed=3)
    assert make_folds(list(reversed(cases())), 4, seed=3) == folds
    assert make_folds(cases(), 4, seed=4) != folds


def test_bad_inputs_name_the_problem():
    with pytest.raises(InputError, match="fewer cases than folds \\(MR: 3; --folds 4\\)"):
        make_folds(cases(20, 3), 4, source="data/dataset.json")
    with pytest.raises(InputError, match="at least 2 folds"):
        make_folds(cases(), 1)
    with pytest.raises(InputError, match="case x has no 'modality'"):
        make_folds(cases() + [Case("x", None, None, None)], 2)


def test_a_fold_dataset_points_at_the_original_files(tiny_dataset, tmp_path):
    index = load_dataset(tiny_dataset)
    fold = make_folds(index.training, 2, seed=0)[1]
    fold_dir = write_fold_dataset(index, fold, tmp_path / "fold1")
    fold_index = load_dataset(fold_dir)
    assert [c.case_id for c in fold_index.training] == fold["train"]
    assert [c.case_id for c in fold_index.test] == fold["test"]
    originals = {c.case_id: c for c in index.training}
    for case in fold_index.cases:
        assert (case.image, case.label, case.modality) == (originals[case.case_id].image,
                                                           originals[case.case_id].label,
                                                           originals[case.case_id].modality)  # fmt: skip
    assert json.loads((fold_dir / "dataset.json").read_text())["labels"] == index.labels
    assert sorted(p.name for p in fold_dir.iterdir()) == ["dataset.json"]  # nothing copied
