"""Where the cases of a source folder are and how each is converted: NIfTI pairs, an MSD task, CHAOS.

`discover_sources` lists `SourceCase`s; each knows how to write itself (image and label map) into the new
dataset directory. Sources are only ever read: NIfTI files are copied byte for byte (their headers, oblique
affines and scl_slope included) unless their labels are remapped.
"""

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_cdseg.data import chaos, dataset, nifti_io
from keras_cdseg.data.nifti_io import NIFTI_SUFFIXES, case_name
from keras_cdseg.errors import InputError

FORMATS = ("nifti-pairs", "msd", "chaos")
# nifti-pairs folder layouts: (image folder, label folder, split; None = training if labelled, else test).
PAIR_FOLDERS = (("images", "labels", None), ("imagesTr", "labelsTr", "training"), ("imagesTs", "labelsTs", "test"))
LABEL_SUFFIXES = ("_seg", "_label")


@dataclasses.dataclass(frozen=True)
class SourceCase:
    """One case to import.

    Args:
        case_id: str. Output file name stem.
        split: "training" or "test".
        modality: str or None.
        image_source, label_source: Path. What the case is read from (reported in preprocess.json).
        convert: callable(image_out, label_out, lut) -> (set of label values written, list of warnings);
            `lut` (uint8[256] or None) remaps label values. Raises InputError for a bad source.
        image_suffix, label_suffix: str. ".nii.gz" or ".nii" (copies keep the source's).
    """

    case_id: str
    split: str
    modality: str | None
    image_source: Path
    label_source: Path | None
    convert: Callable
    image_suffix: str = ".nii.gz"
    label_suffix: str = ".nii.gz"


def detect_format(src):
    """Returns "msd" if `src/dataset.json` exists, "chaos" for CHAOS CT/ or MR/ folders, "nifti-pairs" for pairs."""
    src = Path(src)
    if (src / dataset.DATASET_JSON).is_file():
        return "nifti-pairs" if _is_nnunet_v2(src / dataset.DATASET_JSON) else "msd"
    if chaos.looks_like_chaos(src):
        return "chaos"
    if any((src / images).is_dir() for images, _, _ in PAIR_FOLDERS) or any(_label_base(p) for p in _nifti_files(src)):
        return "nifti-pairs"
    raise InputError(
        src, "cannot tell the source format (no dataset.json, CHAOS CT/ or MR/ folders, images/ + labels/ or *_seg.nii.gz files); pass --format"
    )


def _is_nnunet_v2(json_path):
    # nnU-Net v2 raw data: dataset.json with "channel_names" and no case list; images are imagesTr/<case>_0000.nii.gz.
    try:
        meta = json.loads(json_path.read_text())
    except (ValueError, OSError):
        return False  # let the MSD reader report the malformed file
    return isinstance(meta, dict) and "channel_names" in meta and "training" not in meta


def discover_sources(source_format, src, sequences=chaos.DEFAULT_SEQUENCES, modality=None):
    """Lists the cases of `src` in the given format.

    Returns:
        (source labels name -> value, or None when unknown (nifti-pairs without an nnU-Net dataset.json);
        list of `SourceCase`).

    Raises:
        InputError: a layout problem (missing dataset.json, a label map without image, no cases, ...).
    """
    if source_format == "msd":
        return _discover_msd(src)
    if source_format == "chaos":
        scans = chaos.discover_chaos(src, sequences)
        cases = [
            SourceCase(s.case_id, "training" if s.ground_dir else "test", s.modality, s.dicom_dir, s.ground_dir, _chaos_converter(s))
            for s in scans
        ]
        return dict(chaos.CHAOS_LABELS), _unique(cases, src)
    json_path = Path(src) / dataset.DATASET_JSON
    source_labels = None
    if json_path.is_file() and _is_nnunet_v2(json_path):
        source_labels = dataset.parse_labels(json.loads(json_path.read_text()).get("labels"), json_path)
    return source_labels, _unique(_discover_pairs(src, modality), src)


def _discover_msd(src):
    index = dataset.load_dataset(src)  # raises first on a missing or malformed dataset.json
    channels = json.loads((src / dataset.DATASET_JSON).read_text()).get("modality")
    if isinstance(channels, dict) and len(channels) > 1:
        raise InputError(
            src / dataset.DATASET_JSON, f"multi-modal MSD task ({len(channels)} channels: {channels}); only single-channel images are supported"
        )
    cases = [
        _nifti_case(case.case_id, split, case.modality, case.image, case.label)
        for split, split_cases in (("training", index.training), ("test", index.test))
        for case in split_cases
    ]
    return index.labels, cases


def _discover_pairs(src, modality):
    folders = [(src / i, src / l, split) for i, l, split in PAIR_FOLDERS if (src / i).is_dir()]
    cases = []
    if folders:
        for image_dir, label_dir, split in folders:
            labels = {case_name(p): p for p in _nifti_files(label_dir)}
            images = _strip_channel_suffix({case_name(p): p for p in _nifti_files(image_dir)}, labels, image_dir)
            orphans = sorted(set(labels) - set(images))
            if orphans:
                raise InputError(label_dir, f"label maps without an image in {image_dir.name}/: {orphans}")
            for case_id, image in images.items():
                label = labels.get(case_id)
                if split == "training" and label is None:
                    raise InputError(image, f"{case_id}: no label map {label_dir.name}/{case_id}.nii.gz")
                cases.append(_nifti_case(case_id, split or ("training" if label else "test"), modality, image, label))
        return cases
    files = _nifti_files(src)
    labels = {_label_base(p): p for p in files if _label_base(p)}
    images = {case_name(p): p for p in files if not _label_base(p)}
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise InputError(src, f"label maps without an image: {[labels[o].name for o in orphans]}")
    if not images:
        raise InputError(src, "no NIfTI images found (expected images/ + labels/ or <case>.nii.gz + <case>_seg.nii.gz)")
    return [_nifti_case(c, "training" if c in labels else "test", modality, p, labels.get(c)) for c, p in images.items()]


def _strip_channel_suffix(images, labels, image_dir):
    """nnU-Net names images `<case>_0000` and labels `<case>`: drop the suffix, but only when every image has
    one and no image name matches a label as it is (`case_0001` + `case_0001` stays as it is)."""
    has_suffix = [len(n) > 5 and n[-5] == "_" and n[-4:].isdigit() for n in images]
    if not images or not all(has_suffix) or set(images) & set(labels):
        return images
    channels = {name[-4:] for name in images}
    if {name[:-5] for name in images} & set(labels):
        if channels != {"0000"}:
            raise InputError(image_dir, f"multi-channel images (channel suffixes {sorted(channels)}); only single-channel images are supported")
        return {name[:-5]: path for name, path in images.items()}
    return images


def _nifti_files(folder):
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES) and not p.name.startswith("."))


def _label_base(path):
    name = case_name(path)
    return next((name[: -len(s)] for s in LABEL_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


def _suffix(path):
    return next(s for s in NIFTI_SUFFIXES if path.name.endswith(s))


def _unique(cases, src):
    seen = set()
    for case in cases:
        if case.case_id in seen:
            raise InputError(src, f"two source cases share the case id '{case.case_id}'")
        seen.add(case.case_id)
    if not cases:
        raise InputError(src, "no cases found")
    return cases


def _nifti_case(case_id, split, modality, image, label):
    def convert(image_out, label_out, lut):
        # Copied byte for byte: the header (oblique affine, scl_slope, ...) stays exactly as the source.
        shutil.copyfile(image, image_out)
        if label is None:
            return set(), []
        if lut is None:
            shutil.copyfile(label, label_out)
            try:
                return set(np.unique(np.asarray(nifti_io.load_label(label).data)).tolist()), []
            except InputError:
                return set(), []  # reported by validation, together with the case's other problems
        volume = nifti_io.load_label(label)
        remapped = lut[volume.data]
        nifti_io.save_like(remapped, volume, label_out, dtype=np.uint8)
        return set(np.unique(remapped).tolist()), []

    return SourceCase(case_id, split, modality, image, label, convert, _suffix(image), _suffix(label) if label else ".nii.gz")


def _chaos_converter(scan):
    def convert(image_out, label_out, lut):
        series, label, warnings = chaos.read_chaos_scan(scan)
        nifti_io.save_array(series.data, series.affine, image_out)
        if label is None:
            return set(), warnings
        label = lut[label] if lut is not None else label
        nifti_io.save_array(label, series.affine, label_out, dtype=np.uint8)
        return set(np.unique(label).tolist()), warnings

    return convert
