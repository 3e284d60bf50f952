"""One case of a source folder, as every source format lists it: where it is read from and how it is written."""

import dataclasses
from collections.abc import Callable
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class SourceCase:
    """One case to import.

    Args:
        case_id: str. Output file name stem.
        split: "training" or "test".
        modality: str or None.
        image_source, label_source: Path. What the case is read from (reported in preprocess.json).
        convert: callable(image_out, label_out, lut) -> list of warnings. Writes the case; raises InputError
            for a bad source. What was written is validated afterwards (and its label values counted) by reading
            it back once.
        image_suffix, label_suffix: str. ".nii.gz" or ".nii" (copies keep the source's).
        remaps_while_writing: bool. True for converters that decode the labels anyway (CHAOS PNGs): they get
            the label lookup table (uint8[256] or None) and write remapped values. Converters that copy files
            get None; the importer remaps after validation, and only where values really change.
    """

    case_id: str
    split: str
    modality: str | None
    image_source: Path
    label_source: Path | None
    convert: Callable
    image_suffix: str = ".nii.gz"
    label_suffix: str = ".nii.gz"
    remaps_while_writing: bool = False
