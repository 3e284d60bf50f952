"""Writing a predicted label map as a binary DICOM Segmentation (DICOM-SEG) of its source series.

    labels (columns, rows, slices), on the grid of a DICOM series read by `keras_cdseg.data.dicom_io`
        --one segment per organ (SNOMED CT category and type), one frame per source slice and segment-->
        OUT/<case>.seg.dcm   (highdicom; references every source instance, same Frame of Reference)

Slice k of the label map becomes the frame(s) derived from `series.datasets[k]` (slices are ordered by
position, not by file name), transposed from our (column, row) order to DICOM's (row, column). Frames in
which a segment is empty are omitted (DICOM allows it; readers treat missing frames as empty), every source
instance is still listed in the Referenced Series Sequence. Segments are numbered 1..N in increasing label
value; background (0) is not a segment. The algorithm identification names keras_cdseg and its version.
"""

import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_path

ALGORITHM_NAME = "keras_cdseg"
MANUFACTURER = "keras_cdseg"
SERIES_DESCRIPTION = "keras_cdseg segmentation"
SEG_SERIES_NUMBER = 3001
# Type 2 attributes highdicom copies from the source (Patient and General Study modules). Anonymised
# exports (e.g. the CHAOS data) may drop them; they are then written empty, which the standard allows.
_TYPE2_COPIED = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                 "StudyDate", "StudyTime", "ReferringPhysicianName")  # fmt: skip
_TYPE1_NEEDED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")


def _sct(value, meaning):
    from highdicom.sr import CodedConcept

    return CodedConcept(value, "SCT", meaning)


def segment_property(class_name):
    """`(category, type)` SNOMED CT codes for a class name; unknown names get ("Anatomical Structure", "Organ").

    Known: liver, spleen, kidney(s), right/left kidney, pancreas, stomach, gallbladder, aorta. Right and left
    kidney are SNOMED CT's pre-coordinated 9846003 / 18639004 (not in pydicom's code dictionary).
    """
    from pydicom.sr.codedict import codes

    name = str(class_name).lower()
    known = {
        "liver": codes.SCT.Liver, "spleen": codes.SCT.Spleen, "kidney": codes.SCT.Kidney,
        "kidneys": codes.SCT.Kidney, "pancreas": codes.SCT.Pancreas, "stomach": codes.SCT.Stomach,
        "gallbladder": codes.SCT.Gallbladder, "aorta": codes.SCT.Aorta,
    }  # fmt: skip
    if name == "right_kidney":
        return codes.cid7150.AnatomicalStructure, _sct("9846003", "Right kidney")
    if name == "left_kidney":
        return codes.cid7150.AnatomicalStructure, _sct("18639004", "Left kidney")
    return codes.cid7150.AnatomicalStructure, known.get(name, codes.SCT.Organ)


def segment_descriptions(class_labels, model_version, model_description=None):
    """highdicom `SegmentDescription`s, one per non-background class in increasing label value, and the
    `{label value: segment number}` map. `model_description` (e.g. the model path) becomes the algorithm's
    "model" parameter."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, version=str(model_version), family=codes.cid7162.ArtificialIntelligence,
        parameters={"model": str(model_description)[:1024]} if model_description else None,
    )
    classes = sorted((int(value), str(name)) for name, value in class_labels.items() if int(value) != 0)
    descriptions, numbers = [], {}
    for number, (value, name) in enumerate(classes, start=1):
        category, property_type = segment_property(name)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name, segmented_property_category=category,
            segmented_property_type=property_type, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm, tracking_uid=hd.UID(), tracking_id=f"{name} ({ALGORITHM_NAME})",
        ))  # fmt: skip
        numbers[value] = number
    return descriptions, numbers


def build_dicom_seg(labels, source_datasets, class_labels, model_version=None, model_description=None,
                    series_description=None):
    """A highdicom `Segmentation` (BINARY) of `labels` over the source series.

    Args:
        labels: uint8 `(columns, rows, num_slices)`, the grid of `dicom_io.read_series` (slice k = source k).
        source_datasets: sequence of pydicom Datasets, `source_datasets[k]` the source of slice k
            (`DicomSeries.datasets`); pixel data not needed.
        class_labels: dict name -> label value (background 0 is skipped).
        model_version: str or None. Written as the algorithm version (default: keras_cdseg's version).
        model_description: str or None. Written as the algorithm's "model" parameter (which model ran).
        series_description: str or None. Defaults to "keras_cdseg segmentation".

    Returns:
        `highdicom.seg.Segmentation`.

    Raises:
        InputError: no source datasets, a shape mismatch, label values that are not classes, or sources
            lacking a Study/Series/SOP Instance UID or Frame of Reference UID (needed to reference them).
    """
    import highdicom as hd

    import keras_cdseg

    labels = np.asarray(labels)
    sources = list(source_datasets)
    if not sources:
        raise InputError("--dicom-seg", "no source DICOM datasets (the input is not a DICOM series)")
    expected = (int(sources[0].Columns), int(sources[0].Rows), len(sources))
    if labels.shape != expected:
        raise ValueError(f"labels have shape {labels.shape}, the series (columns, rows, slices) is {expected}")
    for keyword in _TYPE1_NEEDED:
        missing = [ds for ds in sources if not getattr(ds, keyword, None)]
        if missing:
            where = getattr(missing[0], "filename", None) or "source series"
            raise InputError(where, f"DICOM file has no {keyword}; cannot write a DICOM-SEG that references it")
    gap_mm = _slice_gap_mm(sources)
    sources = [_with_type2_attributes(ds, gap_mm) for ds in sources]
    descriptions, numbers = segment_descriptions(
        class_labels, model_version or keras_cdseg.__version__, model_description
    )
    lookup = np.zeros(256, dtype=np.uint8)
    for value, number in numbers.items():
        lookup[value] = number
    unknown = sorted(set(np.unique(labels).tolist()) - set(numbers) - {0})
    if unknown:
        raise ValueError(f"label values {unknown} are not among the classes {class_labels}")
    frames = lookup[labels.astype(np.uint8)].transpose(2, 1, 0)  # (slices, rows, columns), DICOM order
    first = sources[0]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.ascontiguousarray(frames),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=ALGORITHM_NAME,
        software_versions=str(keras_cdseg.__version__),
        device_serial_number="0",
        series_description=series_description or SERIES_DESCRIPTION,
        content_description=f"{ALGORITHM_NAME} automatic segmentation of series {first.SeriesInstanceUID}"[:64],
        content_label="CDSEG",
        content_creator_name=None,
    )


def write_dicom_seg(path, labels, source_datasets, class_labels, model_version=None, model_description=None):
    """Builds the DICOM-SEG (see `build_dicom_seg`) and writes it atomically to `path`; returns the path."""
    seg = build_dicom_seg(labels, source_datasets, class_labels, model_version, model_description)
    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return path


def _slice_gap_mm(sources):
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in sources])
    return float(np.linalg.norm(positions[-1] - positions[0]) / (len(sources) - 1)) if len(sources) > 1 else 1.0


def _with_type2_attributes(dataset, slice_gap_mm):
    """A shallow copy of `dataset` with empty values for missing Type 2 attributes highdicom copies, and
    the measured slice gap as SliceThickness where that is missing (the SEG's pixel measures need one)."""
    thickness = str(getattr(dataset, "SliceThickness", "") or "").strip()
    if all(keyword in dataset for keyword in _TYPE2_COPIED) and thickness:
        return dataset
    copy = dataset.copy()
    for keyword in _TYPE2_COPIED:
        if keyword not in copy:
            setattr(copy, keyword, "")
    if not thickness:
        copy.SliceThickness = round(slice_gap_mm, 6)
    return copy
