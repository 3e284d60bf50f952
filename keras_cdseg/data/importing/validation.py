"""Checks shared by every source format: the destination, case ids across sources, each written case."""

from keras_cdseg.data import dataset
from keras_cdseg.errors import InputError

# Validation of a source whose labels are unknown: every value is declared, the label map's values are counted.
ANY_LABEL = {"background": 0, **{f"label_{v}": v for v in range(1, 256)}}


class DatasetProblems(InputError):
    """Some cases or sources failed; `problems` maps case id (or source folder) -> list of one-line problems."""

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


def check_destination(sources, dst, overwrite):
    """Raises unless every source folder exists and `dst` may be written (never inside or over a source)."""
    for src in sources:
        if not src.is_dir():
            raise InputError(src, "source folder not found")
        if dst == src or src in dst.parents:
            raise InputError(dst, f"destination lies inside the source folder {src}; sources are never modified")
    if dst.exists():
        if not overwrite:
            raise InputError(dst, "already exists; pass --overwrite to replace it")
        for src in sources:
            if dst in src.parents:
                raise InputError(dst, f"cannot overwrite a folder that contains the source {src}")
        if not (dst / dataset.DATASET_JSON).is_file():
            raise InputError(dst, "exists and is not a dataset directory (no dataset.json); refusing to replace it")


def case_id_clashes(cases):
    """Problems for case ids that several sources share: case id -> message naming both files.

    Args:
        cases: SourceCases of all sources, in order (ids are unique within one source).

    Returns:
        (cases to import: the first of each id, dict case id -> list of problems).
    """
    first, kept, problems = {}, [], {}
    for case in cases:
        if case.case_id in first:
            problems.setdefault(case.case_id, []).append(
                f"case id clash: {first[case.case_id].image_source} and {case.image_source} (rename one source's files)"
            )
        else:
            first[case.case_id] = case
            kept.append(case)
    return kept, problems


def check_written_case(case, labels, empty_labels):
    """Validates one case as written (reads image and label map once) and counts its label values."""
    return dataset.validate_case(case, labels if labels is not None else ANY_LABEL, empty_labels=empty_labels)
