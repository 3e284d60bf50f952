"""`cdseg preprocess`: turn a source folder (NIfTI pairs, an MSD task, CHAOS) into a validated dataset directory.

Every case is converted into a temporary directory beside the destination, the result is validated with
`validate_dataset`, and only a dataset without problems is renamed into place; otherwise all problems of all
cases are raised together and nothing is left behind. The source is only ever read.
"""

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from keras_cdseg.data import chaos, dataset
from keras_cdseg.data.import_sources import FORMATS, detect_format, discover_sources
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_dir, replace_dir, write_json_atomic

REPORT_JSON = "preprocess.json"


class DatasetProblems(InputError):
    """Some cases failed; `problems` maps case id -> list of one-line problems (all of them)."""

    def __init__(self, source, problems, num_cases):
        self.problems = problems
        num_problems = sum(len(v) for v in problems.values())
        if num_problems == 1:
            case_id, (problem,) = next(iter(problems.items()))
            super().__init__(case_id, f"{problem}; nothing written")
        else:
            case_id, first = next(iter(problems.items()))
            super().__init__(
                source, f"{num_problems} problems in {len(problems)} of {num_cases} cases (first: {case_id}: {first[0]}); nothing written"
            )


@dataclasses.dataclass(frozen=True)
class ImportResult:
    index: dataset.DatasetIndex
    checks: tuple
    report: dict


def import_dataset(src, dst, source_format=None, label_spec=None, overwrite=False, empty_labels="warn",
                   sequences=chaos.DEFAULT_SEQUENCES, modality=None, name=None, on_case=None):
    """Imports `src` into a new validated dataset directory `dst`.

    Args:
        src: str or Path. Source folder; never modified.
        dst: str or Path. Dataset directory to create; must not exist unless `overwrite` (and then it must be a
            dataset directory, i.e. contain dataset.json, so a typo cannot wipe an unrelated folder).
        source_format: "nifti-pairs", "msd", "chaos" or None (detect).
        label_spec: str or None. Label remapping, e.g. "liver=5,spleen=1" or "liver=liver+cancer" (see
            `parse_label_spec`). None keeps the source labels (CHAOS: "liver", because CT has liver only).
        overwrite: bool. Replace an existing dataset directory (only once the new one is complete).
        empty_labels: "warn", "error" or "ignore" for label maps without foreground.
        sequences: CHAOS sequences to import ("ct", "t1in", "t1out", "t2spir").
        modality: str or None. Modality of every nifti-pairs case (e.g. "CT"); MSD and CHAOS know theirs.
        name: str or None. Dataset name (default: the destination folder name).
        on_case: callable(case_id, CaseCheck or None, problems) or None. Called once per case, in source
            order, after validation (the check is None when the case could not even be converted).

    Returns:
        An `ImportResult` (the loaded index, one `CaseCheck` per case, the `preprocess.json` report).

    Raises:
        InputError: bad arguments or an unreadable source layout.
        DatasetProblems: one or more cases failed; nothing was written.
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    _check_paths(src, dst, overwrite)
    source_format = source_format or detect_format(src)
    if source_format not in FORMATS:
        raise InputError("--format", f"unknown format {source_format!r}; choose from {FORMATS}")
    source_labels, cases = discover_sources(source_format, src, sequences, modality)
    if source_format == "chaos" and label_spec is None:
        label_spec = "liver"
    labels, lut = parse_label_spec(label_spec, source_labels) if label_spec else (source_labels, None)
    staging = dst.with_name(f".{dst.name}.incoming-{os.getpid()}") if dst.exists() else dst
    with atomic_dir(staging) as tmp:
        written, problems, warnings, values_seen = _convert_all(cases, tmp, lut, on_case)
        if labels is None:  # nifti-pairs without --labels: declare what the label maps contain
            labels = {"background": 0, **{f"label_{v}": v for v in sorted(values_seen - {0})}}
        dataset.write_dataset_json(
            tmp, name or dst.name, labels, [c for c, s in written if s == "training"], [c for c, s in written if s == "test"],
            extra={"description": f"imported by cdseg preprocess from {source_format}", "source": str(src)},
        )
        index = dataset.load_dataset(tmp)
        checks = dataset.validate_dataset(index, empty_labels=empty_labels)
        for check in checks:
            if check.problems:
                problems.setdefault(check.case_id, []).extend(check.problems)
            if check.warnings:
                warnings.setdefault(check.case_id, []).extend(check.warnings)
        checks_by_id = {check.case_id: check for check in checks}
        for case in cases if on_case is not None else ():
            on_case(case.case_id, checks_by_id.get(case.case_id), problems.get(case.case_id, []))
        if problems:
            raise DatasetProblems(src, {c.case_id: problems[c.case_id] for c in cases if c.case_id in problems}, len(cases))
        report = _report(src, dst, source_format, label_spec, index, checks, cases, warnings)
        write_json_atomic(tmp / REPORT_JSON, report)
    if staging != dst:
        replace_dir(staging, dst)
    return ImportResult(index=dataset.load_dataset(dst), checks=checks, report=report)


def _check_paths(src, dst, overwrite):
    if not src.is_dir():
        raise InputError(src, "source folder not found")
    if dst == src or src in dst.parents:
        raise InputError(dst, "destination lies inside the source folder; the source is never modified")
    if dst.exists():
        if not overwrite:
            raise InputError(dst, "already exists; pass --overwrite to replace it")
        if dst in src.parents:
            raise InputError(dst, "cannot overwrite a folder that contains the source")
        if not (dst / dataset.DATASET_JSON).is_file():
            raise InputError(dst, "exists and is not a dataset directory (no dataset.json); refusing to replace it")


def _convert_all(cases, tmp, lut, on_case):
    written, problems, warnings, values_seen = [], {}, {}, set()
    for case in cases:
        split_dirs = ("imagesTr", "labelsTr") if case.split == "training" else ("imagesTs", "labelsTs")
        image_out = tmp / split_dirs[0] / f"{case.case_id}{case.image_suffix}"
        label_out = tmp / split_dirs[1] / f"{case.case_id}{case.label_suffix}" if case.label_source else None
        try:
            image_out.parent.mkdir(exist_ok=True)
            if label_out is not None:
                label_out.parent.mkdir(exist_ok=True)
            values, case_warnings = case.convert(image_out, label_out, lut)
        except InputError as e:
            problems[case.case_id] = [str(e)]
            continue
        values_seen |= set(values)
        if case_warnings:
            warnings[case.case_id] = list(case_warnings)
        written.append((dataset.Case(case.case_id, image_out, label_out, case.modality), case.split))
    return written, problems, warnings, values_seen


def parse_label_spec(spec, source_labels=None):
    """Parses a label remapping: comma-separated `name=source[+source...]` or `name` (= `name=name`).

    Sources are source label values or names (MSD / CHAOS label names). Output values are 1, 2, ... in the
    given order; every source value not listed becomes background 0.

    Example: "liver=5,spleen=1,right_kidney=2,left_kidney=3" for TotalSegmentator maps gives
    {"background": 0, "liver": 1, "spleen": 2, "right_kidney": 3, "left_kidney": 4}.

    Returns:
        (labels name -> value, lookup table: uint8 array of 256 mapping source value -> output value).
    """
    source_labels = source_labels or {}
    labels, lut = {"background": 0}, np.zeros(256, dtype=np.uint8)
    claimed = {}
    for item in (part.strip() for part in spec.split(",")):
        out_name, _, sources = item.partition("=")
        out_name, sources = out_name.strip(), (sources or out_name).strip()
        if not out_name or out_name == "background" or out_name in labels:
            raise InputError("--labels", f"bad or repeated label name {out_name!r} in {spec!r}")
        labels[out_name] = len(labels)
        for token in (t.strip() for t in sources.split("+")):
            value = int(token) if token.isdigit() else source_labels.get(token)
            if value is None or not 0 < value <= 255:
                known = ", ".join(f"{k}={v}" for k, v in source_labels.items() if v) or "none; use numbers"
                raise InputError("--labels", f"{token!r} is not a source label value 1..255 or name (source labels: {known})")
            if value in claimed:
                raise InputError("--labels", f"source value {value} is given to both {claimed[value]!r} and {out_name!r}")
            claimed[value] = out_name
            lut[value] = labels[out_name]
    return labels, lut


def _report(src, dst, source_format, label_spec, index, checks, cases, warnings):
    import keras_cdseg

    by_id = {c.case_id: c for c in cases}
    return {
        "keras_cdseg_version": getattr(keras_cdseg, "__version__", None),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(src),
        "destination": str(dst),
        "format": source_format,
        "label_spec": label_spec,
        "labels": index.labels,
        "num_training": len(index.training),
        "num_test": len(index.test),
        "num_warnings": sum(len(v) for v in warnings.values()),
        "cases": [
            {
                "case_id": check.case_id,
                "split": by_id[check.case_id].split,
                "modality": by_id[check.case_id].modality,
                "image_source": str(by_id[check.case_id].image_source),
                "label_source": None if by_id[check.case_id].label_source is None else str(by_id[check.case_id].label_source),
                "shape": check.shape,
                "spacing_mm": check.spacing_mm,
                "label_voxels": {str(k): v for k, v in check.label_voxels.items()},
                "warnings": warnings.get(check.case_id, []),
            }
            for check in checks
        ],
    }
