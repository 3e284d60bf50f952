"""A Medical Segmentation Decathlon task (or one of our dataset directories): `dataset.json` + NIfTI files."""

import json
from pathlib import Path

from keras_cdseg.data import dataset
from keras_cdseg.data.importing.nifti_pairs import nifti_case
from keras_cdseg.errors import InputError


def discover_msd(src, modality=None):
    """Lists the cases of an MSD task.

    Args:
        src: str or Path. The task folder (with dataset.json).
        modality: str or None. Recorded for cases whose dataset.json names no modality.

    Returns:
        (source labels name -> value, list of `SourceCase`).

    Raises:
        InputError: a missing or malformed dataset.json, a multi-channel task, or a `modality` that contradicts
            the one dataset.json records.
    """
    src = Path(src)
    index = dataset.load_dataset(src)  # raises first on a missing or malformed dataset.json
    channels = json.loads((src / dataset.DATASET_JSON).read_text()).get("modality")
    if isinstance(channels, dict) and len(channels) > 1:
        raise InputError(
            src / dataset.DATASET_JSON, f"multi-modal MSD task ({len(channels)} channels: {channels}); only single-channel images are supported"
        )
    cases = []
    for split, split_cases in (("training", index.training), ("test", index.test)):
        for case in split_cases:
            if modality is not None and case.modality is not None and case.modality != modality:
                raise InputError(
                    src / dataset.DATASET_JSON, f"records modality {case.modality} for {case.case_id}; --modality {modality} contradicts it"
                )
            cases.append(nifti_case(case.case_id, split, case.modality or modality, case.image, case.label))
    return index.labels, cases
