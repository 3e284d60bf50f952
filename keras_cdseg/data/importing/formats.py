"""Which source format a folder is, and the cases it holds: NIfTI pairs, an MSD task, CHAOS.

`discover_sources` lists `SourceCase`s; each knows how to write itself (image and label map) into the new
dataset directory. Sources are only ever read.
"""

from pathlib import Path

from keras_cdseg.data import dataset
from keras_cdseg.data.importing import chaos
from keras_cdseg.data.importing.msd import discover_msd
from keras_cdseg.data.importing.nifti_pairs import discover_pairs, is_nnunet_v2, looks_like_pairs
from keras_cdseg.errors import InputError

FORMATS = ("nifti-pairs", "msd", "chaos")


def detect_format(src):
    """Returns "msd" if `src/dataset.json` exists, "chaos" for CHAOS CT/ or MR/ folders, "nifti-pairs" for pairs."""
    src = Path(src)
    if (src / dataset.DATASET_JSON).is_file():
        return "nifti-pairs" if is_nnunet_v2(src / dataset.DATASET_JSON) else "msd"
    if chaos.looks_like_chaos(src):
        return "chaos"
    if looks_like_pairs(src):
        return "nifti-pairs"
    raise InputError(
        src, "cannot tell the source format (no dataset.json, CHAOS CT/ or MR/ folders, images/ + labels/ or *_seg.nii.gz files); pass --format"
    )


def discover_sources(source_format, src, sequences=chaos.DEFAULT_SEQUENCES, modality=None):
    """Lists the cases of `src` in the given format.

    Args:
        source_format: one of `FORMATS`.
        src: str or Path. The source folder.
        sequences: CHAOS sequences to import.
        modality: str or None. Recorded for cases whose source does not say; must agree where it does.

    Returns:
        (source labels name -> value, or None when unknown (nifti-pairs without an nnU-Net dataset.json);
        list of `SourceCase`, never empty, with unique case ids).

    Raises:
        InputError: a layout problem (missing dataset.json, a label map without image, no cases, ...).
    """
    src = Path(src)
    if source_format not in FORMATS:
        raise InputError("--format", f"unknown format {source_format!r}; choose from {FORMATS}")
    if source_format == "msd":
        source_labels, cases = discover_msd(src, modality)
    elif source_format == "chaos":
        source_labels, cases = dict(chaos.CHAOS_LABELS), chaos.discover_chaos_cases(src, sequences, modality)
    else:
        source_labels, cases = discover_pairs(src, modality)
    if not cases:
        raise InputError(src, "no cases found")
    first = {}
    for case in cases:
        if case.case_id in first:
            raise InputError(src, f"two source cases share the case id '{case.case_id}': {first[case.case_id].image_source} and {case.image_source}")
        first[case.case_id] = case
    return source_labels, cases
