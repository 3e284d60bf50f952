"""`cdseg preprocess`: one or several source folders (NIfTI pairs, MSD tasks, CHAOS) into one validated dataset.

Every case is converted into a temporary directory beside the destination and validated right after it is
written; only a dataset without problems is renamed into place. Otherwise all problems of all cases of all
sources are raised together and nothing is left behind. Sources are only ever read.
"""

import dataclasses
import os
import time
from pathlib import Path

from keras_cdseg.data import dataset
from keras_cdseg.data.importing import chaos
from keras_cdseg.data.importing.labels import label_mapping
from keras_cdseg.data.importing.multi_source import ImportSource, discover_all
from keras_cdseg.data.importing.validation import DatasetProblems, check_destination, check_written_case
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_dir, replace_dir, write_json_atomic

REPORT_JSON = "preprocess.json"


@dataclasses.dataclass(frozen=True)
class ImportResult:
    index: dataset.DatasetIndex
    checks: tuple
    report: dict


def import_dataset(src, dst, source_format=None, label_spec=None, overwrite=False, empty_labels="warn",
                   sequences=chaos.DEFAULT_SEQUENCES, modality=None, name=None, on_case=None):
    """Imports one source folder `src` into a new validated dataset directory `dst`.

    Args:
        src: str or Path. Source folder; never modified.
        dst: str or Path. Dataset directory to create (see `import_sources`).
        source_format: "nifti-pairs", "msd", "chaos" or None (detect).
        label_spec: str or None. Label remapping, e.g. "liver=5,spleen=1" or "liver=liver+cancer" (see
            `parse_label_spec`). None keeps the source labels (CHAOS: "liver", because CT has liver only).
        overwrite, empty_labels, name, on_case: see `import_sources`.
        sequences: CHAOS sequences to import ("ct", "t1in", "t1out", "t2spir").
        modality: str or None. Modality of every nifti-pairs case (e.g. "CT"); MSD and CHAOS know theirs.

    Returns:
        An `ImportResult`.
    """
    source = ImportSource(src, source_format, modality, label_spec, tuple(sequences))
    return import_sources([source], dst, overwrite=overwrite, empty_labels=empty_labels, name=name, on_case=on_case)


def import_sources(sources, dst, overwrite=False, empty_labels="warn", name=None, on_case=None):
    """Imports several source folders (e.g. CT and MR from different archives) into one dataset directory.

    Args:
        sources: list of `ImportSource` (or folders, read with detected formats and their own labels).
        dst: str or Path. Dataset directory to create; must not exist unless `overwrite` (and then it must be a
            dataset directory, i.e. contain dataset.json, so a typo cannot wipe an unrelated folder).
        overwrite: bool. Replace an existing dataset directory (only once the new one is complete).
        empty_labels: "warn", "error" or "ignore" for label maps without foreground.
        name: str or None. Dataset name (default: the destination folder name).
        on_case: callable(case id or source folder, CaseCheck or None, problems) or None. Called for every
            source that failed (check None), then once per case in source order, right after it was written and
            validated (the check is None when the case could not even be converted).

    Returns:
        An `ImportResult` (the loaded index, one `CaseCheck` per case, the `preprocess.json` report).

    Raises:
        InputError: bad arguments, or the only problem found.
        DatasetProblems: several problems in cases or sources (all of them); nothing was written.
    """
    sources = [s if isinstance(s, ImportSource) else ImportSource(s) for s in sources]
    if not sources:
        raise InputError("SRC", "no source folder given")
    dst = Path(dst).resolve()
    check_destination([s.path for s in sources], dst, overwrite)
    found = discover_all(sources)
    problems = dict(found.problems)
    for key, source_problems in problems.items() if on_case is not None else ():
        on_case(key, None, source_problems)
    if not found.cases:
        _raise(problems, found, sources)
    staging = dst.with_name(f".{dst.name}.incoming-{os.getpid()}") if dst.exists() else dst
    with atomic_dir(staging) as tmp:
        written = []  # (source index, SourceCase, dataset.Case as written, CaseCheck)
        for source_index, case in found.cases:
            written_case, check, case_problems = _import_case(case, tmp, found.luts[source_index], found.labels, empty_labels)
            if case_problems:
                problems.setdefault(case.case_id, []).extend(case_problems)
            if check is not None:
                written.append((source_index, case, written_case, check))
            if on_case is not None:
                on_case(case.case_id, check, case_problems)
        if problems:
            _raise(problems, found, sources)
        checks = tuple(check for *_, check in written)
        labels = found.labels
        if labels is None:  # nifti-pairs without --labels: declare what the label maps contain
            values = set().union(*(check.label_voxels for check in checks)) - {0}
            labels = {"background": 0, **{f"label_{v}": v for v in sorted(values)}}
        splits = {split: [c for _, case, c, _ in written if case.split == split] for split in ("training", "test")}
        dataset.write_dataset_json(
            tmp, name or dst.name, labels, splits["training"], splits["test"],
            extra={
                "description": f"imported by cdseg preprocess from {' + '.join(s.source_format for s in found.sources)}",
                "sources": [str(s.path) for s in found.sources],
            },
        )
        index = dataset.load_dataset(tmp)
        report = _report(found, dst, labels, index, written)
        write_json_atomic(tmp / REPORT_JSON, report)
    if staging != dst:
        replace_dir(staging, dst)
    return ImportResult(index=dataset.load_dataset(dst), checks=checks, report=report)


def _raise(problems, found, sources):
    if sum(len(p) for p in problems.values()) == 1 and len(found.errors) == 1:
        raise found.errors[0]
    # Failed sources and clashing duplicates count as cases too: each is one entry of `found.problems`.
    num_cases = len(found.cases) + len(found.problems)
    raise DatasetProblems(" + ".join(str(s.path) for s in sources), problems, num_cases)


def _import_case(case, tmp, lut, labels, empty_labels):
    """Writes one case into `tmp` and validates it: (dataset.Case, CaseCheck or None, problems)."""
    image_dir, label_dir = ("imagesTr", "labelsTr") if case.split == "training" else ("imagesTs", "labelsTs")
    image_out = tmp / image_dir / f"{case.case_id}{case.image_suffix}"
    label_out = tmp / label_dir / f"{case.case_id}{case.label_suffix}" if case.label_source else None
    written = dataset.Case(case.case_id, image_out, label_out, case.modality)
    try:
        image_out.parent.mkdir(exist_ok=True)
        if label_out is not None:
            label_out.parent.mkdir(exist_ok=True)
        convert_warnings = case.convert(image_out, label_out, lut if case.remaps_while_writing else None)
    except InputError as e:
        return written, None, [str(e)]
    check = check_written_case(written, labels, empty_labels, lut=None if case.remaps_while_writing else lut)
    return written, dataclasses.replace(check, warnings=(*convert_warnings, *check.warnings)), list(check.problems)


def _report(found, dst, labels, index, written):
    import keras_cdseg

    sources = [
        {
            "path": str(source.path),
            "format": source.source_format,
            "modality": source.modality,
            "label_spec": source.label_spec,
            "label_mapping": label_mapping(labels, found.luts[i]),
            "num_cases": sum(1 for source_index, *_ in written if source_index == i),
        }
        for i, source in enumerate(found.sources)
    ]
    return {
        "keras_cdseg_version": getattr(keras_cdseg, "__version__", None),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "destination": str(dst),
        "sources": sources,
        "labels": index.labels,
        "num_training": len(index.training),
        "num_test": len(index.test),
        "num_warnings": sum(len(check.warnings) for *_, check in written),
        "cases": [
            {
                "case_id": check.case_id,
                "split": case.split,
                "modality": case.modality,
                "source": {k: sources[source_index][k] for k in ("path", "format", "modality", "label_mapping")},
                "image_source": str(case.image_source),
                "label_source": None if case.label_source is None else str(case.label_source),
                "shape": check.shape,
                "spacing_mm": check.spacing_mm,
                "label_voxels": {str(k): v for k, v in check.label_voxels.items()},
                "warnings": list(check.warnings),
            }
            for source_index, case, _, check in written
        ],
    }
