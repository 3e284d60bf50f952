"""Everything training needs from the dataset, checked before the first step.

Selects the labelled training cases (optionally of some modalities, read from dataset.json metadata — the
model never sees it), splits them into training and validation by case, stratified by modality, prepares
them into the volume cache, and fails early with an `InputError` on a dataset that cannot be trained on.
"""

import dataclasses

import numpy as np

from keras_cdseg.data.cache import build_cache
from keras_cdseg.data.dataset import load_dataset
from keras_cdseg.data.pipeline import split_cases
from keras_cdseg.errors import InputError


@dataclasses.dataclass
class TrainingData:
    """The prepared dataset of a run.

    Args:
        labels: dict. Label name -> value (background 0 included).
        class_names: list of str. Name of each output channel (value order).
        cache: `VolumeCache` holding every training and validation case.
        train_ids: tuple of str. Cases the model is trained on.
        val_ids: tuple of str. Held-out cases (never sampled for training).
        modality_of: dict. Case id -> modality string or None (for reports only).
    """

    labels: dict
    class_names: list
    cache: object
    train_ids: tuple
    val_ids: tuple
    modality_of: dict

    @property
    def num_classes(self):
        return len(self.class_names)

    def split_record(self):
        return {"train": list(self.train_ids), "val": list(self.val_ids)}


def class_names_from_labels(labels):
    by_value = {value: name for name, value in labels.items()}
    return [by_value.get(value, f"class{value}") for value in range(max(labels.values()) + 1)]


def prepare_training_data(run_config, cache_dir, split=None, progress=True):
    """Loads, filters, splits and caches the dataset of `run_config`.

    Args:
        run_config: `RunConfig`.
        cache_dir: Path of the prepared-volume cache.
        split: dict with "train" and "val" case ids (a resumed run reuses its own), or None to split now.
        progress: bool. Per-case cache lines on stderr.

    Raises:
        InputError: missing or broken dataset.json, no (matching) labelled training cases, a recorded split
            naming cases the dataset no longer has, or training cases without any foreground voxel.
    """
    train_config = run_config.train
    index = load_dataset(run_config.data_dir)
    cases = [case for case in index.training if case.label is not None]
    if not cases:
        raise InputError(index.root / "dataset.json", "no labelled training cases")
    if train_config.modalities:
        wanted = set(train_config.modalities)
        found = sorted({str(case.modality) for case in cases})
        cases = [case for case in cases if case.modality in wanted]
        if not cases:
            raise InputError(
                index.root / "dataset.json", f"no training cases of modality {sorted(wanted)}; the dataset has {found}"
            )
    by_id = {case.case_id: case for case in cases}
    if split is None:
        train_cases, val_cases = split_cases(cases, train_config.val_fraction, train_config.seed)
        train_ids = tuple(case.case_id for case in train_cases)
        val_ids = tuple(case.case_id for case in val_cases)
    else:
        train_ids, val_ids = tuple(split["train"]), tuple(split["val"])
        missing = sorted(set(train_ids + val_ids) - set(by_id))
        if missing:
            raise InputError(index.root / "dataset.json", f"cases of the run's split are missing: {missing[:5]}")
    if not train_ids:
        raise InputError(index.root / "dataset.json", "no training cases left after the validation split")
    cache = build_cache(index, run_config.data, cache_dir, cases=train_ids + val_ids, progress=progress)
    foreground = sum(int(np.sum(cache.entry(case_id).foreground_pixels or ())) for case_id in train_ids)
    if foreground == 0:
        raise InputError(index.root, "the training cases have no foreground voxels: nothing to learn")
    labels = dict(index.labels)
    return TrainingData(
        labels=labels,
        class_names=class_names_from_labels(labels),
        cache=cache,
        train_ids=train_ids,
        val_ids=val_ids,
        modality_of={case_id: by_id[case_id].modality for case_id in train_ids + val_ids},
    )
