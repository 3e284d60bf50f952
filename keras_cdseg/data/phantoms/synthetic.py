"""The built-in cross-domain dataset: unpaired CT-like and MR-like abdominal phantoms (`cdseg synth`).

Each case is a new random body (`phantom_anatomy`) painted as a tissue map on a modality-typical grid
(`phantom_grid`, `phantom_paint`) and rendered with the CT or MR intensity model (`phantom_intensity`).
The label map comes from the same tissue map, so it is exact on the image grid. See docs/data.md.

Case `i` of a modality draws only from `np.random.default_rng([seed, modality_code, i])` (CT = 1, MR = 2):
a case does not change when the number of cases, the split or the label set changes.
"""

import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_cdseg.data.phantoms import grid as phantom_grid
from keras_cdseg.data.dataset import load_dataset
from keras_cdseg.data.nifti_io import save_array
from keras_cdseg.data.phantoms.anatomy import KIDNEY_TISSUES, LIVER_TISSUES, NUM_TISSUES, TISSUE, sample_anatomy
from keras_cdseg.data.phantoms.intensity import render_ct, render_mr
from keras_cdseg.data.phantoms.paint import paint_tissues
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_dir, replace_dir, write_json_atomic

GENERATOR_VERSION = 1
DATASET_NAME = "cdseg-synthetic"
DEFAULT_LABEL_SPEC = "liver,spleen,kidneys"
MODALITY_CODES = {"CT": 1, "MR": 2}
# Label names accepted in a label spec -> the structures they cover. "kidneys" is one label for both
# kidneys; "right_kidney" / "left_kidney" (the CHAOS importer's names) label them separately, right being
# the patient's right (world +x).
LABEL_STRUCTURES = {
    "liver": ("liver",),
    "spleen": ("spleen",),
    "kidneys": ("right_kidney", "left_kidney"),
    "right_kidney": ("right_kidney",),
    "left_kidney": ("left_kidney",),
}


class PhantomCase(NamedTuple):
    """One generated case, in its storage orientation.

    Attributes:
        image: np.ndarray int16. CT in HU, MR in arbitrary units.
        label: np.ndarray uint8 on the same grid.
        affine: np.ndarray 4×4 voxel -> world (RAS+ mm), shared by image and label.
        modality: "CT" or "MR".
        info: dict. JSON-ready description (grid, orientation, intensity parameters, label volumes).
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    modality: str
    info: dict


def parse_label_spec(spec=DEFAULT_LABEL_SPEC):
    """Label name -> value for a spec such as "liver,spleen,kidneys".

    Liver is required and always 1; the other names get 2, 3, ... in the order given; background is 0.

    Args:
        spec: str (comma-separated), iterable of names, or a name -> value dict already in this form.

    Returns:
        dict, e.g. {"background": 0, "liver": 1, "spleen": 2, "kidneys": 3}.

    Raises:
        InputError: unknown or repeated names, no liver, or "kidneys" together with a single kidney.
    """
    if isinstance(spec, dict):
        names = [n for n, _ in sorted(spec.items(), key=lambda item: item[1]) if n != "background"]
        parsed = parse_label_spec(names)
        if parsed != dict(spec):
            raise InputError("labels", f"expected values {parsed} for these names, got {dict(spec)}")
        return parsed
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in LABEL_STRUCTURES]
    if unknown:
        raise InputError("labels", f"unknown label name(s) {unknown}; choose from {sorted(LABEL_STRUCTURES)}")
    if len(set(names)) != len(names):
        raise InputError("labels", f"a label name is repeated in {names}")
    if "liver" not in names:
        raise InputError("labels", f"liver must be one of the labels (it is always 1), got {names}")
    if "kidneys" in names and ({"right_kidney", "left_kidney"} & set(names)):
        raise InputError("labels", "use either 'kidneys' (one label) or 'right_kidney'/'left_kidney', not both")
    others = [n for n in names if n != "liver"]
    return {"background": 0, "liver": 1, **{name: value for value, name in enumerate(others, start=2)}}


def _label_map(tissue, x_axis_mm, labels):
    """uint8 labels from a canonical tissue map; kidneys split by side at the body axis (x = 0)."""
    structure_value = {s: labels[name] for name in labels if name != "background" for s in LABEL_STRUCTURES[name]}
    lookup = np.zeros(NUM_TISSUES, dtype=np.uint8)
    lookup[list(LIVER_TISSUES)] = structure_value.get("liver", 0)
    lookup[TISSUE["spleen"]] = structure_value.get("spleen", 0)
    lookup[list(KIDNEY_TISSUES)] = structure_value.get("right_kidney", 0)
    label = np.take(lookup, tissue)
    left_value = structure_value.get("left_kidney", 0)
    if left_value != structure_value.get("right_kidney", 0):
        num_left = int(np.searchsorted(x_axis_mm, 0.0))  # canonical axis 0 runs from patient left to right
        left = label[:num_left]
        left[np.isin(tissue[:num_left], KIDNEY_TISSUES)] = left_value
    return label


def make_case(modality, rng, size="small", labels=DEFAULT_LABEL_SPEC, orientation=None):
    """Generates one phantom.

    Args:
        modality: "CT" or "MR".
        rng: np.random.Generator. All randomness (anatomy, grid, intensities, orientation) comes from it.
        size: "small" (quick, low resolution) or "full" (realistic resolution). See `phantom_grid`.
        labels: label spec (see `parse_label_spec`). Defaults to "liver,spleen,kidneys".
        orientation: None (random, per `phantom_grid.ORIENTATIONS`) or three axis codes such as "LPS".

    Returns:
        PhantomCase.
    """
    if modality not in phantom_grid.MODALITIES:
        raise InputError("modality", f"must be one of {phantom_grid.MODALITIES}, got {modality!r}")
    if size not in phantom_grid.SIZES:
        raise InputError("size", f"must be one of {phantom_grid.SIZES}, got {size!r}")
    labels = parse_label_spec(labels)
    anatomy = sample_anatomy(rng)
    grid = phantom_grid.sample_grid(rng, modality, size)
    axes_mm = grid.anatomy_axes_mm()
    tissue = paint_tissues(anatomy, *axes_mm)
    render = render_ct if modality == "CT" else render_mr
    image, intensity_info = render(tissue, axes_mm, rng)
    label = _label_map(tissue, axes_mm[0], labels)
    drawn = phantom_grid.sample_orientation(rng, modality)
    axcodes = tuple(orientation) if orientation is not None else drawn
    (image, label), affine = phantom_grid.reorient([image, label], grid.affine, axcodes)
    voxel_ml = float(np.prod(grid.spacing_mm)) / 1000.0
    counts = np.bincount(label.ravel(), minlength=max(labels.values()) + 1)
    info = {
        "modality": modality,
        "size": size,
        "shape": list(image.shape),
        "spacing_mm": [round(float(s), 4) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0))],
        "orientation": "".join(axcodes),
        "label_volumes_ml": {n: round(float(counts[v]) * voxel_ml, 1) for n, v in labels.items() if v},
        "intensity": intensity_info,
        "anatomy": anatomy.summary(),
    }
    return PhantomCase(image=image, label=label, affine=affine, modality=modality, info=info)


def make_ct_case(rng, size="small", labels=DEFAULT_LABEL_SPEC, orientation=None):
    """A CT phantom (int16 HU); see `make_case`."""
    return make_case("CT", rng, size=size, labels=labels, orientation=orientation)


def make_mr_case(rng, size="small", labels=DEFAULT_LABEL_SPEC, orientation=None):
    """A T1-weighted MR phantom (int16, arbitrary per-case scale); see `make_case`."""
    return make_case("MR", rng, size=size, labels=labels, orientation=orientation)


def case_rng(seed, modality, index):
    """The generator of case `index` of `modality`: independent of every other case."""
    return np.random.default_rng([int(seed), MODALITY_CODES[modality], int(index)])


def num_test_cases(num_cases, num_test=None, test_fraction=0.2):
    """Test cases of one modality: `num_test` if given, else round(num_cases * test_fraction)."""
    if num_test is None:
        if not 0.0 <= test_fraction < 1.0:
            raise InputError("--test-fraction", f"must be in [0, 1), got {test_fraction}")
        num_test = int(np.floor(num_cases * test_fraction + 0.5))
    if num_test < 0:
        raise InputError("--num-test", f"must be >= 0, got {num_test}")
    return min(int(num_test), num_cases)


def write_synthetic_dataset(
    out_dir,
    num_ct=20,
    num_mr=20,
    seed=0,
    size="full",
    num_test=None,
    test_fraction=0.2,
    labels=DEFAULT_LABEL_SPEC,
    overwrite=False,
    progress=None,
):
    """Writes a dataset directory of phantoms (MSD layout + dataset.json + synth.json), atomically.

    The directory is built under a temporary name beside `out_dir` and renamed when complete, so it is
    either absent or whole. Test cases are the last `num_test` of each modality (both modalities appear in
    the test split whenever they have test cases); they get labels too (labelsTs/).

    Args:
        out_dir: path. Must not exist unless `overwrite` (then it must be an earlier synthetic dataset or
            empty; it is replaced only after the new one is complete).
        num_ct, num_mr: int >= 0. Cases per modality; at least one case in total.
        seed: int. Dataset seed.
        size: "small" or "full".
        num_test: int or None. Test cases per modality; overrides `test_fraction`.
        test_fraction: float in [0, 1). Fraction of each modality's cases put in the test split (rounded).
        labels: label spec, see `parse_label_spec`.
        overwrite: bool. Replace an existing synthetic dataset at `out_dir`.
        progress: callable(done, total, case_id, message) or None, called after each case.

    Returns:
        The written dataset's `keras_cdseg.data.dataset.DatasetIndex`.

    Raises:
        InputError: bad settings, or `out_dir` exists (without `overwrite`, or not a synthetic dataset).
    """
    out_dir = Path(os.path.abspath(out_dir))  # "." or "x/" still have a parent to build beside
    labels = parse_label_spec(labels)
    if size not in phantom_grid.SIZES:
        raise InputError("--size", f"must be one of {phantom_grid.SIZES}, got {size!r}")
    counts = {"CT": int(num_ct), "MR": int(num_mr)}
    if min(counts.values()) < 0 or sum(counts.values()) < 1:
        raise InputError("--num-ct/--num-mr", f"need >= 0 cases each and at least one in total, got {counts}")
    tests = {m: num_test_cases(n, num_test, test_fraction) for m, n in counts.items()}
    if sum(counts.values()) - sum(tests.values()) < 1:
        raise InputError("--num-test/--test-fraction", f"no training case left ({counts} cases, {tests} for test)")
    _check_target(out_dir, overwrite)

    plan = [(m, i, i >= counts[m] - tests[m]) for m in ("CT", "MR") for i in range(counts[m])]
    settings = {
        "generator_version": GENERATOR_VERSION, "seed": int(seed), "size": size, "num_ct": counts["CT"],
        "num_mr": counts["MR"], "num_test_per_modality": tests, "labels": labels,
    }  # fmt: skip
    staging_target = out_dir if not out_dir.exists() else out_dir.with_name(f".{out_dir.name}.new-{os.getpid()}")
    entries = {"training": [], "test": []}
    case_infos = []
    with atomic_dir(staging_target) as tmp:
        for done, (modality, index, is_test) in enumerate(plan, start=1):
            start = time.perf_counter()
            case = make_case(modality, case_rng(seed, modality, index), size=size, labels=labels)
            case_id = f"{modality.lower()}_{index:03d}"
            split, suffix = ("test", "Ts") if is_test else ("training", "Tr")
            save_array(case.image, case.affine, tmp / f"images{suffix}" / f"{case_id}.nii.gz", dtype=np.int16)
            save_array(case.label, case.affine, tmp / f"labels{suffix}" / f"{case_id}.nii.gz", dtype=np.uint8)
            entries[split].append({
                "image": f"./images{suffix}/{case_id}.nii.gz", "label": f"./labels{suffix}/{case_id}.nii.gz",
                "modality": modality,
            })  # fmt: skip
            case_infos.append({"case_id": case_id, "split": split, **case.info})
            if progress is not None:
                shape = "x".join(str(s) for s in case.info["shape"])
                progress(done, len(plan), case_id, f"{modality} {split} {shape} {case.info['orientation']}"
                         f" ({time.perf_counter() - start:.1f} s)")  # fmt: skip
        write_json_atomic(tmp / "dataset.json", {
            "name": DATASET_NAME,
            "description": f"Synthetic CT/MR abdominal phantoms (keras_cdseg synth, seed {int(seed)}, size {size})",
            "tensorImageSize": "3D",
            "labels": labels,
            "numTraining": len(entries["training"]),
            "numTest": len(entries["test"]),
            "training": entries["training"],
            "test": entries["test"],
        })  # fmt: skip
        write_json_atomic(tmp / "synth.json", {"settings": settings, "cases": case_infos})
    if staging_target != out_dir:
        replace_dir(staging_target, out_dir)

    return load_dataset(out_dir)


def _check_target(out_dir, overwrite):
    if not out_dir.exists():
        return
    if not overwrite:
        raise InputError(out_dir, "already exists; choose a new directory or pass --overwrite to replace it")
    if not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a directory; refusing to replace it")
    if any(out_dir.iterdir()) and not (out_dir / "synth.json").is_file():
        raise InputError(out_dir, "is not a synthetic dataset (no synth.json); refusing to replace it")
