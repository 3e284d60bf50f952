"""Which label value means which class in the prediction and in the reference, and what was left out.

Another tool's reference rarely uses the model's values (TotalSegmentator: liver = 5, spleen = 1), so a class
may have one value in the prediction and another in the reference:

    --labels liver=1 --ref-labels liver=5      or      --labels liver=1:5        (name=pred:ref)

`LabelMapping.reference_as_prediction` rewrites a reference into the prediction's values (every other
reference value becomes background, so a reference spleen = 1 never counts as a predicted liver = 1), and
`LabelCoverage` gathers the values present in either map that no class evaluates, for the warning that
makes a wrong mapping visible instead of a silent Dice of 0.
"""

import dataclasses

import numpy as np

from keras_cdseg.errors import InputError


def parse_label_pairs(text, option="--labels"):
    """`"liver=1:5,spleen=2"` -> `{"liver": (1, 5), "spleen": (2, None)}`; InputError naming `option` otherwise."""
    pairs = {}
    for item in (part.strip() for part in str(text).split(",")):
        name, sep, values = (s.strip() for s in item.partition("="))
        pred, colon, ref = (s.strip() for s in values.partition(":"))
        if not sep or not name or not pred.isdigit() or (colon and not ref.isdigit()):
            raise InputError(option, f"expected name=value pairs like liver=1,spleen=2 (or name=pred:ref like "
                                      f"liver=1:5), got {item!r}")  # fmt: skip
        if name in pairs:
            raise InputError(option, f"class {name!r} given twice")
        pairs[name] = (int(pred), int(ref) if colon else None)
    return pairs


@dataclasses.dataclass(frozen=True)
class LabelMapping:
    """`labels`: class name -> prediction value; `ref_values`: class name -> reference value."""

    labels: dict
    ref_values: dict

    @property
    def is_identity(self):
        return all(self.ref_values[name] == value for name, value in self.labels.items())

    def reference_as_prediction(self, labels_gt):
        """The reference label map in the prediction's values (unchanged when every value is the same)."""
        labels_gt = np.asarray(labels_gt)
        if self.is_identity:
            return labels_gt
        out = np.zeros(labels_gt.shape, np.uint8)
        for name, value in self.labels.items():
            out[labels_gt == self.ref_values[name]] = value
        return out

    def describe(self):
        """`{"liver": {"prediction": 1, "reference": 5}}` for report.json."""
        return {name: {"prediction": value, "reference": self.ref_values[name]} for name, value in self.labels.items()}


def label_mapping(labels_text=None, ref_labels_text=None, default_labels=None):
    """The `LabelMapping` of `--labels` / `--ref-labels` (either may be None).

    Args:
        labels_text: `name=value` or `name=pred:ref` pairs; None takes `default_labels`.
        ref_labels_text: `name=value` pairs of reference values for classes of the labels.
        default_labels: dict name -> value used in both maps when `labels_text` is None.

    Raises:
        InputError: a malformed option, a --ref-labels class that is not evaluated, or two reference values
            for one class.
    """
    if labels_text is not None:
        pairs = parse_label_pairs(labels_text, "--labels")
    else:
        pairs = {name: (int(value), None) for name, value in dict(default_labels or {}).items()}
    ref_pairs = parse_label_pairs(ref_labels_text, "--ref-labels") if ref_labels_text is not None else {}
    for name, (value, extra) in ref_pairs.items():
        if extra is not None:
            raise InputError("--ref-labels", f"expected name=value pairs (the reference's values), got {name}={value}:{extra}")
        if name not in pairs:
            raise InputError("--ref-labels", f"class {name!r} is not evaluated; classes are {sorted(pairs)}")
        if pairs[name][1] is not None and pairs[name][1] != value:
            raise InputError("--ref-labels", f"class {name!r} has reference value {pairs[name][1]} in --labels and "
                                             f"{value} here")  # fmt: skip
    labels = {name: pred for name, (pred, _) in pairs.items()}
    ref_values = {name: ref_pairs.get(name, (ref if ref is not None else pred, None))[0]
                  for name, (pred, ref) in pairs.items()}  # fmt: skip
    foreground = {n: v for n, v in ref_values.items() if labels[n] != 0}
    if len(set(foreground.values())) != len(foreground):
        raise InputError("--ref-labels", f"two classes share a reference value: {foreground}")
    return LabelMapping(labels, ref_values)


class LabelCoverage:
    """Label values present in the predictions or references that no evaluated class uses.

    `unevaluated` = `{"prediction": {value: [case ids]}, "reference": {...}}` (background 0 is never listed);
    `unevaluated_record` = `{"prediction": {"2": num_cases}, ...}`, JSON-ready and kept up to date (a report's
    settings can hold it before the cases are read).
    """

    def __init__(self, mapping):
        self.evaluated = {"prediction": set(mapping.labels.values()) | {0},
                          "reference": set(mapping.ref_values.values()) | {0}}  # fmt: skip
        self.unevaluated = {"prediction": {}, "reference": {}}
        self.unevaluated_record = {"prediction": {}, "reference": {}}

    def add(self, case_id, labels_pred, labels_gt):
        for role, array in (("prediction", labels_pred), ("reference", labels_gt)):
            for value in present_values(array):
                if value not in self.evaluated[role]:
                    self.unevaluated[role].setdefault(value, []).append(case_id)
                    record = self.unevaluated_record[role]
                    record[str(value)] = record.get(str(value), 0) + 1

    def warning(self):
        """One line naming the values that were present but not evaluated, or None."""
        parts = []
        for role, found in self.unevaluated.items():
            if found:
                cases = sorted({c for ids in found.values() for c in ids})
                where = cases[0] if len(cases) == 1 else f"{len(cases)} cases"
                parts.append(f"{role} values {', '.join(str(v) for v in sorted(found))} ({where})")
        if not parts:
            return None
        return ("label values present but not evaluated: " + "; ".join(parts)
                + ". Name them with --labels name=pred:ref (or --ref-labels) to evaluate them.")  # fmt: skip


def present_values(array):
    """The distinct values of an integer label map (bincount for small non-negative values: no sort)."""
    flat = np.asarray(array).reshape(-1)
    if not flat.size:
        return []
    if flat.dtype == np.bool_:
        flat = flat.view(np.uint8)
    low, high = int(flat.min()), int(flat.max())
    if low >= 0 and high < 1 << 16:
        return [int(v) for v in np.flatnonzero(np.bincount(flat, minlength=1))]
    return [int(v) for v in np.unique(flat)]
