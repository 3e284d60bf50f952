"""NIfTI image/label pairs: `images/` + `labels/` folders, nnU-Net raw folders, BTCV's `img/` + `label/`, flat
`<case>_seg` files.

Files are copied byte for byte (their headers, oblique affines and scl_slope included); a label map is rewritten
only when a remapping really changes its values (see `importer`).
"""

import json
import shutil
from pathlib import Path

from keras_cdseg.data import dataset
from keras_cdseg.data.importing.source_case import SourceCase
from keras_cdseg.data.nifti_io import NIFTI_SUFFIXES, case_name
from keras_cdseg.errors import InputError

# (image folder, label folder, split (None = training if labelled, else test), image name prefix, label name
# prefix). The prefixes pair BTCV's RawData.zip names: Training/img/img0001.nii.gz + Training/label/label0001.nii.gz.
PAIR_FOLDERS = (
    ("images", "labels", None, "", ""),
    ("imagesTr", "labelsTr", "training", "", ""),
    ("imagesTs", "labelsTs", "test", "", ""),
    ("img", "label", None, "img", "label"),
    ("Training/img", "Training/label", "training", "img", "label"),
    ("Testing/img", "Testing/label", "test", "img", "label"),
)
LABEL_SUFFIXES = ("_seg", "_label")


def looks_like_pairs(src):
    """True for any of the folder layouts of `PAIR_FOLDERS` or flat `<case>_seg.nii.gz` files."""
    return any((src / folders[0]).is_dir() for folders in PAIR_FOLDERS) or any(_label_base(p) for p in _nifti_files(src))


def is_nnunet_v2(json_path):
    """nnU-Net v2 raw data: dataset.json with "channel_names" and no case list (read as NIfTI pairs)."""
    try:
        meta = json.loads(Path(json_path).read_text())
    except (ValueError, OSError):
        return False  # let the MSD reader report the malformed file
    return isinstance(meta, dict) and "channel_names" in meta and "training" not in meta


def discover_pairs(src, modality=None):
    """Lists the NIfTI pairs of `src`.

    Returns:
        (source labels name -> value from an nnU-Net v2 dataset.json, else None; list of `SourceCase`).

    Raises:
        InputError: a label map without image, a training image without label map, no images.
    """
    src = Path(src)
    json_path = src / dataset.DATASET_JSON
    source_labels = None
    if json_path.is_file() and is_nnunet_v2(json_path):
        source_labels = dataset.parse_labels(json.loads(json_path.read_text()).get("labels"), json_path)
    folders = [folders for folders in PAIR_FOLDERS if (src / folders[0]).is_dir()]
    if not folders:
        return source_labels, _discover_flat(src, modality)
    cases = []
    for image_rel, label_rel, split, image_prefix, label_prefix in folders:
        image_dir, label_dir = src / image_rel, src / label_rel
        labels = {_as_image_name(case_name(p), label_prefix, image_prefix): p for p in _nifti_files(label_dir)}
        images = _strip_channel_suffix({case_name(p): p for p in _nifti_files(image_dir)}, labels, image_dir)
        orphans = sorted(set(labels) - set(images))
        if orphans:
            raise InputError(label_dir, f"label maps without an image in {image_rel}/: {sorted(labels[o].name for o in orphans)}")
        for case_id, image in images.items():
            label = labels.get(case_id)
            if split == "training" and label is None:
                expected = _as_image_name(case_id, image_prefix, label_prefix)
                raise InputError(image, f"{case_id}: no label map {label_rel}/{expected}.nii.gz")
            cases.append(nifti_case(case_id, split or ("training" if label else "test"), modality, image, label))
    return source_labels, cases


def _as_image_name(name, prefix, replacement):
    return replacement + name[len(prefix):] if prefix and name.startswith(prefix) else name


def _discover_flat(src, modality):
    files = _nifti_files(src)
    labels = {_label_base(p): p for p in files if _label_base(p)}
    images = {case_name(p): p for p in files if not _label_base(p)}
    orphans = sorted(set(labels) - set(images))
    if orphans:
        raise InputError(src, f"label maps without an image: {[labels[o].name for o in orphans]}")
    if not images:
        raise InputError(src, "no NIfTI images found (expected images/ + labels/ or <case>.nii.gz + <case>_seg.nii.gz)")
    return [nifti_case(c, "training" if c in labels else "test", modality, p, labels.get(c)) for c, p in images.items()]


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


def nifti_case(case_id, split, modality, image, label):
    """A `SourceCase` that copies its NIfTI files byte for byte: the header (oblique affine, scl_slope, ...) stays
    exactly as the source. A label remapping is left to the importer, which needs the values first."""

    def convert(image_out, label_out, lut):
        shutil.copyfile(image, image_out)
        if label is not None:
            shutil.copyfile(label, label_out)
        return []

    return SourceCase(case_id, split, modality, image, label, convert, _suffix(image), _suffix(label) if label else ".nii.gz")
