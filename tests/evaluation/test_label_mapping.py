"""The prediction-to-reference value mapping (`--labels name=pred:ref`, `--ref-labels`) and the coverage of
values present but not evaluated."""

import numpy as np
import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.evaluation.label_mapping import LabelCoverage, label_mapping, parse_label_pairs, present_values


def test_parse_label_pairs():
    assert parse_label_pairs("liver=1:5, spleen=2") == {"liver": (1, 5), "spleen": (2, None)}
    for bad in ("liver", "liver=1:", "liver=:5", "liver=1:5:6", "=1", "liver=1,liver=1:5"):
        with pytest.raises(InputError, match="--labels"):
            parse_label_pairs(bad)


def test_both_spellings_give_the_same_mapping_and_defaults_map_to_themselves():
    colon = label_mapping("liver=1:5,spleen=2")
    separate = label_mapping("liver=1,spleen=2", "liver=5")
    assert colon == separate and colon.labels == {"liver": 1, "spleen": 2}
    assert colon.ref_values == {"liver": 5, "spleen": 2} and not colon.is_identity
    default = label_mapping(None, None, {"liver": 1})
    assert default.is_identity and default.describe() == {"liver": {"prediction": 1, "reference": 1}}
    assert label_mapping(None, "liver=5", {"liver": 1}).ref_values == {"liver": 5}


def test_reference_in_prediction_values_drops_every_other_reference_value():
    mapping = label_mapping("liver=1:5,spleen=2:1")
    reference = np.array([0, 1, 5, 5, 7, 2])  # TotalSegmentator: 1 spleen, 5 liver, 2 and 7 other organs
    assert mapping.reference_as_prediction(reference).tolist() == [0, 2, 1, 1, 0, 0]
    identity = label_mapping("liver=1")
    assert identity.reference_as_prediction(reference) is not None
    assert np.array_equal(identity.reference_as_prediction(reference), reference)  # nothing rewritten


def test_coverage_names_values_present_but_not_evaluated():
    coverage = LabelCoverage(label_mapping("liver=1:5"))
    coverage.add("a", np.array([0, 1, 3]), np.array([0, 5, 1, 2]))
    coverage.add("b", np.array([0, 1]), np.array([0, 5, 1]))
    assert coverage.unevaluated_record == {"prediction": {"3": 1}, "reference": {"1": 2, "2": 1}}
    warning = coverage.warning()
    assert "prediction values 3 (a)" in warning and "reference values 1, 2 (2 cases)" in warning
    clean = LabelCoverage(label_mapping("liver=1"))
    clean.add("a", np.array([0, 1]), np.array([1, 0]))
    assert clean.warning() is None


def test_present_values_of_any_integer_map():
    assert present_values(np.array([[3, 0], [3, 70000]], np.int64)) == [0, 3, 70000]
    assert present_values(np.array([True, False])) == [0, 1]
    assert present_values(np.array([-1, 2], np.int16)) == [-1, 2] and present_values(np.zeros(0, np.uint8)) == []


@pytest.mark.parametrize(
    "labels, ref_labels, fragment",
    [
        ("liver=1", "kidney=3", "'kidney' is not evaluated"),
        ("liver=1:5", "liver=4", "reference value 5 in --labels and 4"),
        ("liver=1", "liver=5:6", "the reference's values"),
        ("liver=1:5,spleen=2:5", None, "share a reference value"),
    ],
)
def test_bad_mappings_name_the_option(labels, ref_labels, fragment):
    with pytest.raises(InputError, match=fragment):
        label_mapping(labels, ref_labels)
