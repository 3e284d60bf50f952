"""The dataset directory: Medical Segmentation Decathlon layout with a `dataset.json` index.

```
root/
  dataset.json      {"name", "labels", "training": [{"image", "label", "modality"?}], "test": [...]}
  imagesTr/ labelsTr/ imagesTs/ labelsTs/
```
`load_dataset` reads both our writer's form (`"labels": {"background": 0, "liver": 1}`, name -> value) and
the MSD original (`"labels": {"0": "background", "1": "liver"}`, value -> name; top-level
`"modality": {"0": "CT"}`; `"test"` as a list of plain path strings), so MSD Task03_Liver works unchanged.
`load_dataset` only checks the index and that every referenced file exists; `validate_dataset` loads every
image/label pair and collects all content problems per case.
"""

import dataclasses
import json
from pathlib import Path

from keras_cdseg.data.nifti_io import case_name
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import write_json_atomic

DATASET_JSON = "dataset.json"


@dataclasses.dataclass(frozen=True)
class Case:
    """One image (and optional label map) of a dataset.

    Args:
        case_id: str. Image file name without `.nii.gz` / `.nii`, e.g. "ct_003".
        image: Path. Absolute path of the image.
        label: Path or None. Absolute path of the label map; None for unlabelled test cases.
        modality: str or None. "CT", "MR", ...; used only to group reports, never given to the model.
    """

    case_id: str
    image: Path
    label: Path | None = None
    modality: str | None = None


@dataclasses.dataclass(frozen=True)
class DatasetIndex:
    """The parsed `dataset.json` of a dataset directory.

    Args:
        root: Path. The dataset directory (absolute).
        name: str. The dataset's name.
        labels: dict[str, int]. Label name -> value; always contains "background": 0.
        training: tuple[Case, ...]. Labelled training cases.
        test: tuple[Case, ...]. Test cases (label optional).
    """

    root: Path
    name: str
    labels: dict
    training: tuple
    test: tuple

    @property
    def cases(self):
        """Training then test cases."""
        return self.training + self.test


def load_dataset(root):
    """Reads `root/dataset.json` and checks that every referenced file exists.

    Args:
        root: str or Path. The dataset directory.

    Returns:
        A `DatasetIndex` with absolute paths.

    Raises:
        InputError: missing or malformed `dataset.json`, missing keys, bad labels, duplicate case ids, or an
            entry pointing at a missing file (the message names the entry and the path).
    """
    root = Path(root).resolve()
    json_path = root / DATASET_JSON
    if not root.is_dir():
        raise InputError(root, "dataset directory not found")
    if not json_path.is_file():
        raise InputError(json_path, "dataset.json not found (expected the MSD layout: dataset.json, imagesTr/, ...)")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(json_path, f"malformed JSON ({e})") from None
    if not isinstance(meta, dict):
        raise InputError(json_path, "top level must be a JSON object")
    for key in ("labels", "training"):
        if key not in meta:
            raise InputError(json_path, f"missing key '{key}'")
    labels = parse_labels(meta["labels"], json_path)
    default_modality = _default_modality(meta.get("modality"), json_path)
    training = _parse_entries(meta["training"], "training", root, json_path, default_modality, need_label=True)
    test = _parse_entries(meta.get("test", []), "test", root, json_path, default_modality, need_label=False)
    seen = {}
    for split, cases in (("training", training), ("test", test)):
        for i, case in enumerate(cases):
            if case.case_id in seen:
                raise InputError(json_path, f"duplicate case id '{case.case_id}' in {seen[case.case_id]} and {split}[{i}]")
            seen[case.case_id] = f"{split}[{i}]"
    name = meta.get("name", root.name)
    return DatasetIndex(root=root, name=str(name), labels=labels, training=training, test=test)


def parse_labels(raw, source):
    """Label table of either form -> {name: value} with "background": 0 first.

    Accepts our form ({"liver": 1}) and the MSD form ({"1": "liver"}). Value 0 is always called
    "background" (MSD files already do; a table without 0 gets it added).

    Raises:
        InputError: not a mapping, values outside 0..255, or a name or value used twice.
    """
    if not isinstance(raw, dict) or not raw:
        raise InputError(source, "'labels' must be a non-empty object")
    msd_form = all(isinstance(v, str) for v in raw.values())
    pairs = []
    for key, value in raw.items():
        name, number = (value, key) if msd_form else (key, value)
        try:
            number_int = int(number)
        except (TypeError, ValueError):
            number_int = None
        if number_int is None or isinstance(number, bool) or str(number_int) != str(number).strip():
            raise InputError(source, f"label {key!r}: {value!r} is not an integer label value")
        if not 0 <= number_int <= 255:
            raise InputError(source, f"label {name!r}: value {number_int} outside 0..255")
        pairs.append((str(name), number_int))
    labels = {"background": 0}
    for name, number in sorted(pairs, key=lambda p: p[1]):
        if number == 0:
            continue
        if name in labels:
            raise InputError(source, f"label name {name!r} is used for several values")
        if number in labels.values():
            raise InputError(source, f"label value {number} is declared twice")
        labels[name] = number
    return labels


def _default_modality(raw, json_path):
    # MSD: {"0": "CT"}; one channel is all we support, so several channels leave the modality unknown here
    # (the MSD importer rejects multi-channel tasks with a clear message).
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict) and len(raw) == 1:
        return str(next(iter(raw.values())))
    if isinstance(raw, dict):
        return None
    raise InputError(json_path, f"'modality' must be a string or an object, got {type(raw).__name__}")


def _parse_entries(raw, split, root, json_path, default_modality, need_label):
    if not isinstance(raw, list):
        raise InputError(json_path, f"'{split}' must be a list")
    cases = []
    for i, entry in enumerate(raw):
        where = f"{json_path} {split}[{i}]"
        if isinstance(entry, str):
            entry = {"image": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise InputError(where, "entry must be a path string or an object with an 'image' path")
        case_id = case_name(entry["image"])
        where = f"{where} ({case_id})"
        label_ref = entry.get("label")
        if need_label and not isinstance(label_ref, str):
            raise InputError(where, "training entry has no 'label' path")
        image = _existing(root, entry["image"], where, "image")
        label = _existing(root, label_ref, where, "label") if isinstance(label_ref, str) else None
        modality = entry.get("modality", default_modality)
        cases.append(Case(case_id=case_id, image=image, label=label, modality=None if modality is None else str(modality)))
    return tuple(cases)


def _existing(root, ref, where, kind):
    path = (root / ref).resolve()
    if not path.is_file():
        raise InputError(where, f"{kind} file '{ref}' not found ({path})")
    return path


def write_dataset_json(root, name, labels, training, test, extra=None):
    """Writes `root/dataset.json` atomically in our form.

    Args:
        root: str or Path. The dataset directory; case paths are written relative to it ("./imagesTr/x.nii.gz").
        name: str. Dataset name.
        labels: dict[str, int]. Name -> value (MSD value -> name tables are converted); "background": 0 is added.
        training: sequence of `Case`. Must all have labels.
        test: sequence of `Case`. Labels optional.
        extra: dict or None. Further top-level keys (e.g. "description", "source"); cannot override the above.

    Raises:
        ValueError: a case file outside `root`, or a training case without a label (programming errors).
    """
    root = Path(root).resolve()
    meta = dict(extra or {})
    meta.update(
        name=str(name),
        labels=parse_labels(dict(labels), "labels"),
        numTraining=len(training),
        numTest=len(test),
        training=[_entry(root, case, need_label=True) for case in training],
        test=[_entry(root, case, need_label=False) for case in test],
    )
    write_json_atomic(root / DATASET_JSON, meta)


def _entry(root, case, need_label):
    if need_label and case.label is None:
        raise ValueError(f"training case {case.case_id} has no label")
    entry = {"image": _relative(root, case.image)}
    if case.label is not None:
        entry["label"] = _relative(root, case.label)
    if case.modality is not None:
        entry["modality"] = case.modality
    return entry


def _relative(root, path):
    path = Path(path)
    if not path.is_absolute():
        path = root / path
    return "./" + path.resolve().relative_to(root).as_posix()


EMPTY_LABEL_POLICIES = ("warn", "error", "ignore")


@dataclasses.dataclass(frozen=True)
class CaseCheck:
    """What `validate_case` found for one case.

    Args:
        case_id: str.
        problems: tuple[str, ...]. Every problem found (empty when the case is usable).
        warnings: tuple[str, ...]. Findings that do not make the case unusable (e.g. an empty label map).
        shape: tuple or None. Image shape when it could be read.
        spacing_mm: tuple or None. Voxel size along the array axes.
        label_voxels: dict[int, int]. Voxel count per label value (empty without a label).
    """

    case_id: str
    problems: tuple = ()
    warnings: tuple = ()
    shape: tuple | None = None
    spacing_mm: tuple | None = None
    label_voxels: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self):
        return not self.problems


def validate_case(case, labels, empty_labels="warn", atol_mm=1e-3):
    """Loads one image/label pair and collects every problem instead of stopping at the first.

    Checks: readable 3D NIfTI, finite and non-constant image, integer label values all declared in
    `labels`, same shape and affine (within `atol_mm`) for image and label, non-empty label map.

    Args:
        case: Case.
        labels: dict[str, int]. Declared labels (name -> value).
        empty_labels: "warn" (default), "error" or "ignore": what a label map without foreground is.
            Warn by default because a scan without the organ is legitimate (e.g. a healthy control for a
            lesion label), but usually a sign of a wrong file.
        atol_mm: float. Tolerance on the affine entries.

    Returns:
        A `CaseCheck`.
    """
    import numpy as np

    from keras_cdseg.data import nifti_io

    if empty_labels not in EMPTY_LABEL_POLICIES:
        raise ValueError(f"empty_labels must be one of {EMPTY_LABEL_POLICIES}. Received: empty_labels={empty_labels!r}")
    problems, warnings = [], []
    image = label = None
    try:
        image = nifti_io.load_image(case.image)
    except InputError as e:
        problems.append(f"image {case.image.name}: {e.problem}")
    if case.label is not None:
        try:
            label = nifti_io.load_label(case.label)
        except InputError as e:
            problems.append(f"label {case.label.name}: {e.problem}")
    label_voxels = {}
    if label is not None:
        # load_label returns uint8; bincount is an order of magnitude faster than unique on big volumes.
        counts = np.bincount(label.data.ravel(), minlength=256)
        label_voxels = {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
        undeclared = sorted(set(label_voxels) - set(labels.values()))
        if undeclared:
            problems.append(f"label {case.label.name}: values {undeclared} are not declared in labels {labels}")
        if not set(label_voxels) - {0}:
            message = f"label {case.label.name}: label map is empty (background only)"
            {"warn": warnings, "error": problems, "ignore": []}[empty_labels].append(message)
        grid = image if image is not None else _header_grid(case.image)
        if grid is not None:
            try:
                nifti_io.check_same_grid(grid, label, atol_mm=atol_mm)
            except InputError as e:
                problems.append(f"label {case.label.name}: {e.problem}")
    return CaseCheck(
        case_id=case.case_id,
        problems=tuple(problems),
        warnings=tuple(warnings),
        shape=None if image is None else tuple(int(n) for n in image.shape),
        spacing_mm=None if image is None else tuple(round(s, 6) for s in image.spacing_mm),
        label_voxels=label_voxels,
    )


def _header_grid(path):
    # The image's voxels may be unusable (NaN, constant) while its grid is fine: compare grids from the header
    # so one run reports both kinds of problem.
    import types

    import nibabel as nib
    import numpy as np

    try:
        img = nib.load(str(path))
        shape = tuple(img.shape[:3]) if len(img.shape) == 3 or img.shape[3:] == (1,) else None
    except Exception:  # noqa: BLE001 - the load error itself is already reported
        return None
    if shape is None:
        return None
    # check_same_grid reads only shape, affine and path.
    return types.SimpleNamespace(shape=shape, affine=np.asarray(img.affine, dtype=np.float64), path=Path(path))


def validate_dataset(index, empty_labels="warn", atol_mm=1e-3, on_case=None):
    """Runs `validate_case` on every training and test case of `index`.

    Args:
        index: DatasetIndex.
        empty_labels: "warn", "error" or "ignore" (see `validate_case`).
        atol_mm: float. Affine tolerance.
        on_case: callable(CaseCheck) or None. Called after each case (progress output).

    Returns:
        tuple[CaseCheck, ...] in index order; a case is usable when `.ok`.
    """
    checks = []
    for case in index.cases:
        check = validate_case(case, index.labels, empty_labels=empty_labels, atol_mm=atol_mm)
        if on_case is not None:
            on_case(check)
        checks.append(check)
    return tuple(checks)
