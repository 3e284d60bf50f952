"""K-fold cross-validation by patient, stratified by modality, and one dataset directory per fold.

Each case is one patient (the abdominal CT and MR sets are unpaired), so splitting cases is splitting
patients. Within each modality the case ids are sorted, shuffled with the seed and dealt round-robin over the
folds, continuing where the previous modality stopped: every fold gets `n // K` or `n // K + 1` cases of each
modality and the fold sizes differ by at most one. The same cases, modalities and seed give the same folds
whatever the order of dataset.json.

A fold's dataset directory holds only a `dataset.json` whose training list is the fold's training cases and
whose test list is the fold's test cases, pointing at the original files (absolute paths, nothing copied), so
`train()` never sees the test cases and its own validation split comes from the fold's training cases.
"""

from pathlib import Path

import numpy as np

from keras_cdseg.data.dataset import DATASET_JSON
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import write_json_atomic


def make_folds(cases, num_folds, seed=0, source="dataset"):
    """Splits cases into `num_folds` disjoint test folds, stratified by modality.

    Args:
        cases: sequence of `keras_cdseg.data.dataset.Case` (anything with `case_id` and `modality`).
        num_folds: int >= 2.
        seed: int. The shuffle within each modality.
        source: path or name used in error messages (the dataset).

    Returns:
        A list of `num_folds` dicts: `fold` (index), `test` and `train` (sorted case ids) and `test_by_modality`
        (modality -> number of test cases).

    Raises:
        InputError: fewer than 2 folds, a case without a modality, or a modality with fewer cases than folds
            (a fold would have no test case of it).
    """
    num_folds = int(num_folds)
    if num_folds < 2:
        raise InputError("--folds", f"cross-validation needs at least 2 folds. Received: {num_folds}")
    by_modality = {}
    for case in cases:
        if case.modality is None:
            raise InputError(source, f"case {case.case_id} has no 'modality' in dataset.json (needed to stratify "
                                     "the folds and to group the results)")  # fmt: skip
        by_modality.setdefault(str(case.modality), []).append(case.case_id)
    if not by_modality:
        raise InputError(source, "no labelled training case to cross-validate")
    too_few = {m: len(ids) for m, ids in by_modality.items() if len(ids) < num_folds}
    if too_few:
        counts = ", ".join(f"{m}: {n}" for m, n in sorted(too_few.items()))
        raise InputError(source, f"fewer cases than folds ({counts}; --folds {num_folds}): every fold needs a test "
                                 "case of each modality")  # fmt: skip
    rng = np.random.default_rng(seed)
    test = [[] for _ in range(num_folds)]
    position = 0
    for modality in sorted(by_modality):
        for case_id in rng.permutation(sorted(by_modality[modality])).tolist():
            test[position % num_folds].append((modality, case_id))
            position += 1
    all_ids = sorted(case.case_id for case in cases)
    folds = []
    for index, members in enumerate(test):
        test_ids = sorted(case_id for _, case_id in members)
        counts = {}
        for modality, _ in members:
            counts[modality] = counts.get(modality, 0) + 1
        folds.append({
            "fold": index,
            "test": test_ids,
            "train": sorted(set(all_ids) - set(test_ids)),
            "test_by_modality": dict(sorted(counts.items())),
        })  # fmt: skip
    return folds


def write_fold_dataset(index, fold, fold_dir):
    """Writes `fold_dir/dataset.json`: the fold's training cases as "training", its test cases as "test".

    Args:
        index: the full dataset's `DatasetIndex`.
        fold: one entry of `make_folds`.
        fold_dir: str or Path. Created if missing.

    Returns:
        The Path of the fold's dataset directory.
    """
    fold_dir = Path(fold_dir)
    by_id = {case.case_id: case for case in index.training}
    meta = {
        "name": f"{index.name} fold {fold['fold']}",
        "description": f"cross-validation fold {fold['fold']} of {index.root} (written by cdseg experiment "
                       "cross-domain; the paths point at the original files)",  # fmt: skip
        "labels": dict(index.labels),
        "numTraining": len(fold["train"]),
        "numTest": len(fold["test"]),
        "training": [_entry(by_id[case_id]) for case_id in fold["train"]],
        "test": [_entry(by_id[case_id]) for case_id in fold["test"]],
    }
    fold_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(fold_dir / DATASET_JSON, meta)
    return fold_dir


def _entry(case):
    return {"image": str(case.image), "label": str(case.label), "modality": case.modality}
