"""Label remapping (`--labels`) and one set of labels for several sources."""

import numpy as np

from keras_cdseg.errors import InputError


def parse_label_spec(spec, source_labels=None):
    """Parses a label remapping: comma-separated `name=source[+source...]` or `name` (= `name=name`).

    Sources are source label values or names (MSD / CHAOS label names). Output values are 1, 2, ... in the
    given order; every source value not listed becomes background 0.

    Example: "liver=5,spleen=1,right_kidney=2,left_kidney=3" for TotalSegmentator maps gives
    {"background": 0, "liver": 1, "spleen": 2, "right_kidney": 3, "left_kidney": 4}.

    Returns:
        (labels name -> value, lookup table: uint8 array of 256 mapping source value -> output value).
    """
    source_labels = source_labels or {}
    labels, lut = {"background": 0}, np.zeros(256, dtype=np.uint8)
    claimed = {}
    for item in (part.strip() for part in spec.split(",")):
        out_name, _, sources = item.partition("=")
        out_name, sources = out_name.strip(), (sources or out_name).strip()
        if not out_name or out_name == "background" or out_name in labels:
            raise InputError("--labels", f"bad or repeated label name {out_name!r} in {spec!r}")
        labels[out_name] = len(labels)
        for token in (t.strip() for t in sources.split("+")):
            value = int(token) if token.isdigit() else source_labels.get(token)
            if value is None or not 0 < value <= 255:
                known = ", ".join(f"{k}={v}" for k, v in source_labels.items() if v) or "none; use numbers"
                raise InputError("--labels", f"{token!r} is not a source label value 1..255 or name (source labels: {known})")
            if value in claimed:
                raise InputError("--labels", f"source value {value} is given to both {claimed[value]!r} and {out_name!r}")
            claimed[value] = out_name
            lut[value] = labels[out_name]
    return labels, lut


def source_labels_and_lut(source_format, label_spec, source_labels):
    """One source's output labels (None when unknown: NIfTI pairs without --labels) and lookup table (None: as is).

    CHAOS defaults to the liver only, because its CT ground truth has only the liver (a CT map without spleen
    next to MR maps with spleen would teach the network that CT spleen is background).
    """
    if source_format == "chaos" and label_spec is None:
        label_spec = "liver"
    if label_spec:
        return parse_label_spec(label_spec, source_labels)
    return source_labels, None


def combine_labels(per_source):
    """One set of labels for several sources, in the order of the first source that names its labels.

    Args:
        per_source: list of (source name, labels or None, lut or None).

    Returns:
        (labels or None when no source names its labels; list of luts, one per source, composed so that each
        source's values land on the combined values; problems: dict source name -> message).
        A source whose labels are unknown keeps its values; validation checks them against the labels.
    """
    named = [(name, labels) for name, labels, _ in per_source if labels is not None]
    if not named:
        return None, [lut for _, _, lut in per_source], {}
    first_name, combined = named[0]
    luts, problems = [], {}
    for name, labels, lut in per_source:
        if labels is None or labels == combined:
            luts.append(lut)
            continue
        if set(labels) != set(combined):
            # A source without an organ would teach the network that this organ is background.
            problems[name] = (
                f"labels {sorted(set(labels) - {'background'})} differ from {sorted(set(combined) - {'background'})} of "
                f"{first_name}; every source must label the same structures (choose them with --labels)"
            )
            luts.append(lut)
            continue
        to_combined = np.arange(256, dtype=np.uint8)
        for label_name, value in labels.items():
            to_combined[value] = combined[label_name]
        luts.append(to_combined[lut] if lut is not None else to_combined)
    return combined, luts, problems


def label_mapping(labels, lut):
    """Output label name -> the source values written as it (what preprocess.json records per source)."""
    if lut is None:
        return {name: [value] for name, value in labels.items() if value}
    return {name: np.flatnonzero(lut == value).tolist() for name, value in labels.items() if value}
