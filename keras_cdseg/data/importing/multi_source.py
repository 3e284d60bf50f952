"""Several sources (e.g. CT from one archive, MR from another) as one list of cases with one set of labels.

Options given once apply to every source; given once per source they apply in order. Every source is
discovered even when another one fails, so one run reports the problems of all of them.
"""

import dataclasses
from pathlib import Path

from keras_cdseg.data.importing import chaos
from keras_cdseg.data.importing.formats import FORMATS, detect_format, discover_sources
from keras_cdseg.data.importing.labels import combine_labels, source_labels_and_lut
from keras_cdseg.data.importing.validation import case_id_clashes
from keras_cdseg.errors import InputError


@dataclasses.dataclass(frozen=True)
class ImportSource:
    """One source folder and how to read it.

    Args:
        path: str or Path. The folder; never modified.
        source_format: "nifti-pairs", "msd", "chaos" or None (detect).
        modality: str or None. Recorded for cases whose source does not say (nifti-pairs; MSD without one);
            where the source says (CHAOS, MSD), it must agree.
        label_spec: str or None. `--labels` for this source (see `parse_label_spec`).
        sequences: tuple of CHAOS sequences ("ct", "t1in", "t1out", "t2spir").
    """

    path: Path
    source_format: str | None = None
    modality: str | None = None
    label_spec: str | None = None
    sequences: tuple = chaos.DEFAULT_SEQUENCES

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).resolve())
        if self.source_format is not None and self.source_format not in FORMATS:
            raise InputError("--format", f"unknown format {self.source_format!r}; choose from {FORMATS}")


@dataclasses.dataclass(frozen=True)
class Discovered:
    """What `discover_all` found.

    Args:
        sources: tuple of `ImportSource`, formats resolved.
        cases: tuple of (source index, `SourceCase`), clashing ids and failed sources left out.
        labels: dict or None. The dataset's labels (None: declared later from the values found).
        luts: tuple, one uint8[256] lookup table or None (as is) per source.
        problems: dict case id or source folder -> list of one-line problems.
        errors: tuple of the `InputError`s behind the source-level problems (re-raised as they are when one is
            the only problem, so a single source fails as it always did).
    """

    sources: tuple
    cases: tuple
    labels: dict | None
    luts: tuple
    problems: dict
    errors: tuple = ()


def per_source(option, values, num_sources):
    """An option given once (for every source), once per source, or not at all (None for every source)."""
    values = tuple(values or ())
    if not values:
        return (None,) * num_sources
    if len(values) == 1:
        return values * num_sources
    if len(values) != num_sources:
        raise InputError(option, f"given {len(values)} times for {num_sources} sources; give it once (for every source) or once per source")
    return values


def sources_from_options(paths, formats=(), modalities=(), label_specs=(), sequences=chaos.DEFAULT_SEQUENCES):
    """`ImportSource`s from the command line's repeated options (`--format`, `--modality`, `--labels`)."""
    formats = per_source("--format", formats, len(paths))
    modalities = per_source("--modality", modalities, len(paths))
    label_specs = per_source("--labels", label_specs, len(paths))
    return [ImportSource(p, f, m, s, tuple(sequences)) for p, f, m, s in zip(paths, formats, modalities, label_specs)]


def discover_all(sources):
    """Discovers every source, resolves its labels, and combines them; collects the problems of all sources."""
    resolved, per_source_labels, cases, problems, errors = [], [], [], {}, []
    for index, source in enumerate(sources):
        key = str(source.path)
        try:
            if not source.path.is_dir():
                raise InputError(source.path, "source folder not found")
            source = dataclasses.replace(source, source_format=source.source_format or detect_format(source.path))
            source_labels, source_cases = discover_sources(source.source_format, source.path, source.sequences, source.modality)
            labels, lut = source_labels_and_lut(source.source_format, source.label_spec, source_labels)
        except InputError as e:
            problems.setdefault(key, []).append(str(e) if e.source != key else e.problem)
            errors.append(e)
            labels, lut, source_cases = None, None, []
        resolved.append(source)
        per_source_labels.append((key, labels, lut))
        cases.extend((index, case) for case in source_cases)
    labels, luts, label_problems = combine_labels(per_source_labels)
    for key, problem in label_problems.items():
        problems.setdefault(key, []).append(problem)
    kept, clashes = case_id_clashes(cases)
    problems.update(clashes)
    return Discovered(tuple(resolved), tuple(kept), labels, tuple(luts), problems, tuple(errors))
