"""The multi-source combination below the CLI: options per source, one label set, remapping after validation."""

import re

import numpy as np
import pytest
from test_import_builders import tiny_case, write_msd_task, write_nifti_pair

from keras_cdseg.data import nifti_io
from keras_cdseg.data.importing import DatasetProblems, ImportSource, import_sources, sources_from_options
from keras_cdseg.data.importing.labels import combine_labels, parse_label_spec
from keras_cdseg.data.importing.multi_source import per_source
from keras_cdseg.errors import InputError


def _pairs(folder, values_per_case):
    for i, values in enumerate(values_per_case):
        image, label = tiny_case(i)
        label[:] = 0
        for k, value in enumerate(values):
            label[k, 0:3, :] = value
        write_nifti_pair(folder / "images" / f"{folder.name}_{i}.nii.gz", folder / "labels" / f"{folder.name}_{i}.nii.gz", image, label)
    return folder


def test_per_source_counts():
    assert per_source("--modality", (), 3) == (None, None, None)
    assert per_source("--modality", ("CT",), 3) == ("CT", "CT", "CT")
    assert per_source("--modality", ("CT", "MR"), 2) == ("CT", "MR")
    with pytest.raises(InputError, match=r"^--labels: given 3 times for 2 sources"):
        per_source("--labels", ("a", "b", "c"), 2)
    sources = sources_from_options(["a", "b"], ("chaos",), ("CT", "MR"), (), ("t2spir",))
    assert [(s.source_format, s.modality, s.label_spec, s.sequences) for s in sources] == [
        ("chaos", "CT", None, ("t2spir",)), ("chaos", "MR", None, ("t2spir",)),
    ]  # fmt: skip
    with pytest.raises(InputError, match="unknown format 'dicom'"):
        ImportSource("a", "dicom")


def test_combine_labels_aligns_by_name_and_keeps_unknown_sources():
    first, lut_first = parse_label_spec("liver=6,spleen=1")
    second, lut_second = parse_label_spec("spleen=4,liver=1")
    labels, luts, problems = combine_labels([("a", first, lut_first), ("b", second, lut_second), ("c", None, None)])
    assert labels == {"background": 0, "liver": 1, "spleen": 2} and problems == {}
    assert luts[0] is lut_first and luts[2] is None
    assert (luts[1][1], luts[1][4], luts[1][2]) == (1, 2, 0)
    assert combine_labels([("a", None, None), ("b", None, None)]) == (None, [None, None], {})


def test_sources_without_labels_declare_the_union_of_their_values(tmp_path):
    a, b = _pairs(tmp_path / "a", [(1,), (1,)]), _pairs(tmp_path / "b", [(1, 2)])
    result = import_sources([a, b], tmp_path / "dst")
    assert result.index.labels == {"background": 0, "label_1": 1, "label_2": 2}
    assert [s["label_mapping"] for s in result.report["sources"]] == [{"label_1": [1], "label_2": [2]}] * 2


def test_an_unlabelled_source_is_checked_against_the_named_labels(tmp_path):
    write_msd_task(tmp_path / "msd", num_training=1, num_test=0)
    pairs = _pairs(tmp_path / "pairs", [(1, 3)])
    with pytest.raises(DatasetProblems, match=r"pairs_0: label pairs_0.nii.gz: values \[3\] are not declared in labels"):
        import_sources([tmp_path / "msd", pairs], tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("empty_labels", ["warn", "error"])
def test_a_map_emptied_by_the_remapping_is_an_empty_label(tmp_path, empty_labels):
    a = _pairs(tmp_path / "a", [(1,), (7,)])
    source = ImportSource(a, label_spec="liver=1")
    message = "label a_1.nii.gz: label map is empty (background only) after --labels: none of the source values [1]"
    if empty_labels == "error":
        with pytest.raises(DatasetProblems, match=re.escape(f"a_1: {message}; nothing written")):
            import_sources([source], tmp_path / "dst", empty_labels=empty_labels)
        return
    result = import_sources([source], tmp_path / "dst", empty_labels=empty_labels)
    assert result.report["cases"][1]["warnings"] == [message]
    assert result.report["cases"][1]["label_voxels"] == {"0": 8 * 7 * 4}
    assert set(np.unique(nifti_io.load_label(result.index.training[1].label).data)) == {0}
