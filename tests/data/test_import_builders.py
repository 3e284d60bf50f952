"""Builders of small real source trees (DICOM via pydicom, PNG via Pillow, NIfTI via nibabel) for the import tests.

Holds no tests; other test files import it (`tests/data` is on sys.path under pytest's default import mode;
tests elsewhere add it explicitly).
"""

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from keras_cdseg.data import nifti_io

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CHAOS_MR_GREY = {"liver": 63, "right_kidney": 126, "left_kidney": 189, "spleen": 252}


def write_dicom_slice(path, pixels, position, orientation=AXIAL, spacing_row_col=(0.8, 0.7), modality="CT",
                      series_uid=None, slope=1.0, intercept=-1024.0, instance=1):
    """Writes one single-frame DICOM slice; `pixels` is (rows, columns) of stored (pre-rescale) values."""
    pixels = np.asarray(pixels, dtype=np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing_row_col]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = pixels.tobytes()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)


def slice_positions(num_slices, first=(-10.0, 20.0, -30.0), orientation=AXIAL, gap_mm=2.5):
    x_dir, y_dir = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(x_dir, y_dir)
    return [np.array(first) + k * gap_mm * normal for k in range(num_slices)]


def write_series(folder, stored, orientation=AXIAL, gap_mm=2.5, name_order=None, series_uid="shared", **kwargs):
    """Writes `stored[k]` (rows, cols) at the k-th position along the normal; file i holds slice `name_order[i]`.

    Files are named like CHAOS CT (`i0000,0000b.dcm`), so natural order of names = `name_order`.
    Returns the file paths in name order.
    """
    num_slices = len(stored)
    name_order = list(range(num_slices)) if name_order is None else list(name_order)
    positions = slice_positions(num_slices, orientation=orientation, gap_mm=gap_mm)
    uid = generate_uid() if series_uid == "shared" else series_uid
    paths = []
    for file_index, k in enumerate(name_order):
        path = Path(folder) / f"i{file_index:04d},0000b.dcm"
        write_dicom_slice(path, stored[k], positions[k], orientation=orientation, series_uid=uid, instance=file_index + 1, **kwargs)
        paths.append(path)
    return paths


def write_png(path, array):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").save(str(path))


def shuffled_order(num_slices, seed):
    order = list(range(num_slices))
    random.Random(seed).shuffle(order)
    return order


def organ_masks(num_slices, rows, cols, seed):
    """Per-slice integer masks with values 0..4 (liver, right kidney, left kidney, spleen) that differ per slice."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((num_slices, rows, cols), dtype=np.uint8)
    for k in range(num_slices):
        r0 = int(rng.integers(1, rows // 2))
        masks[k, r0 : r0 + 3, 1:5] = 1
        masks[k, rows - 3 :, 0:2] = 2
        masks[k, rows - 3 :, cols - 2 :] = 3
        masks[k, 0:2, cols - 3 :] = 4
    return masks


def write_chaos_case(root, modality, patient, num_slices=5, rows=12, cols=10, seed=0, sequences=("InPhase", "OutPhase", "T2SPIR"),
                     with_ground=True):
    """Writes one CHAOS patient; returns {sequence: (stored (k, rows, cols), masks (k, rows, cols))} in position order.

    DICOM names are shuffled relative to position, and the i-th PNG (natural order) belongs to the i-th DICOM.
    """
    rng = np.random.default_rng(seed)
    out = {}
    if modality == "CT":
        folders = {"CT": (Path(root) / "CT" / str(patient) / "DICOM_anon", Path(root) / "CT" / str(patient) / "Ground")}
    else:
        base = Path(root) / "MR" / str(patient)
        folders = {
            "InPhase": (base / "T1DUAL" / "DICOM_anon" / "InPhase", base / "T1DUAL" / "Ground"),
            "OutPhase": (base / "T1DUAL" / "DICOM_anon" / "OutPhase", base / "T1DUAL" / "Ground"),
            "T2SPIR": (base / "T2SPIR" / "DICOM_anon", base / "T2SPIR" / "Ground"),
        }
        folders = {k: v for k, v in folders.items() if k in sequences}
    masks = organ_masks(num_slices, rows, cols, seed)
    if modality == "CT":
        masks = (masks == 1).astype(np.uint8)
    name_order = shuffled_order(num_slices, seed)
    for sequence, (dicom_dir, ground_dir) in folders.items():
        stored = rng.integers(0, 2000, size=(num_slices, rows, cols)).astype(np.int16)
        kwargs = {"modality": "CT"} if modality == "CT" else {"modality": "MR", "intercept": 0.0}
        write_series(dicom_dir, stored, name_order=name_order, **kwargs)
        if with_ground:
            for file_index, k in enumerate(name_order):
                grey = np.zeros((rows, cols), dtype=np.uint8)
                if modality == "CT":
                    grey[masks[k] == 1] = 255
                else:
                    for value, name in enumerate(CHAOS_MR_GREY, start=1):
                        # Vary the grey inside the documented ranges.
                        grey[masks[k] == value] = CHAOS_MR_GREY[name] + (-4 if k % 2 else 2)
                png_name = f"liver_GT_{file_index:03d}.png" if modality == "CT" else f"IMG-0004-{file_index + 1:05d}.png"
                write_png(ground_dir / png_name, grey)
        out[sequence] = (stored, masks)
    return out


def write_nifti_pair(image_path, label_path, image, label, affine=None):
    affine = np.diag([1.5, 1.5, 3.0, 1.0]) if affine is None else affine
    nifti_io.save_array(image, affine, image_path)
    if label_path is not None:
        nifti_io.save_array(label, affine, label_path, dtype=np.uint8)


def tiny_case(seed, shape=(8, 7, 4), liver_value=1):
    rng = np.random.default_rng(seed)
    image = rng.normal(50, 10, size=shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    label[2:5, 2:5, 1:3] = liver_value
    return image, label


def write_msd_task(root, num_training=2, num_test=1, labels=None):
    """An MSD task folder with the exact Task03_Liver dataset.json form."""
    root = Path(root)
    training, test = [], []
    for i in range(num_training):
        image, label = tiny_case(i)
        label[0, 0, 0] = 2
        write_nifti_pair(root / "imagesTr" / f"liver_{i}.nii.gz", root / "labelsTr" / f"liver_{i}.nii.gz", image, label)
        training.append({"image": f"./imagesTr/liver_{i}.nii.gz", "label": f"./labelsTr/liver_{i}.nii.gz"})
    for i in range(num_training, num_training + num_test):
        image, _ = tiny_case(i)
        write_nifti_pair(root / "imagesTs" / f"liver_{i}.nii.gz", None, image, None)
        test.append(f"./imagesTs/liver_{i}.nii.gz")
    meta = {
        "name": "LITS",
        "description": "Liver and Liver Tumor Segmentation",
        "reference": "https://competitions.codalab.org/competitions/17094",
        "licence": "CC-BY-SA 4.0",
        "relase": "1.0 04/05/2018",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": labels or {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": num_training,
        "numTest": num_test,
        "training": training,
        "test": test,
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=4))
    return meta


def tree_fingerprint(root):
    """{relative path: (sha256, mtime_ns)} of every file under root: proves a source was not modified."""
    root = Path(root)
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_dicom(path):
    return pydicom.dcmread(str(path))
