"""Where the organs lie relative to each other in reference labels: the margins behind the organ-level checks.

    python scripts/organ_anatomy_reference.py DATA_DIR [--real-ct-labels LABELS.nii.gz] [--out OUT.json]

For every labelled case of DATA_DIR (a `cdseg preprocess` dataset) and, optionally, the real CT's reference
labels (TotalSegmentator's values: liver 5, right kidney 2, left kidney 3, spleen 1), the centroids of
`keras_cdseg.inference.quality.anatomy.organ_summary` give: how far (mm) each right organ lies right of its
left partner (`RIGHT_LEFT_PAIRS`) and how far the liver and spleen lie above the mean of the kidneys. Prints
and writes (atomically) the range of each over the cases; a check that flags a reversed sign needs these to
be far from 0.
"""

import argparse
import sys
from pathlib import Path

TOTALSEGMENTATOR = {"liver": 5, "right_kidney": 2, "left_kidney": 3, "spleen": 1}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--real-ct-labels", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import numpy as np

    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.data.nifti_io import load_label
    from keras_cdseg.errors import InputError
    from keras_cdseg.inference.quality.anatomy import ABOVE_KIDNEYS, RIGHT_LEFT_PAIRS, organ_summary
    from keras_cdseg.io_utils import write_json_atomic

    try:
        index = load_dataset(args.data_dir)
        labels = {name: value for name, value in index.labels.items() if int(value) != 0}
        sources = [(case.case_id, load_label(case.label), labels) for case in index.cases if case.label is not None]
        if args.real_ct_labels is not None:
            sources.append((args.real_ct_labels.name, load_label(args.real_ct_labels), TOTALSEGMENTATOR))
    except InputError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    cases = {}
    for case_id, label, values in sources:
        organs = organ_summary(np.asarray(label.data), label.affine, values)
        row = {f"{right}_right_of_{left}_mm": organs[right]["centroid_mm"][0] - organs[left]["centroid_mm"][0]
               for right, left in RIGHT_LEFT_PAIRS if organs[right]["centroid_mm"] and organs[left]["centroid_mm"]}  # fmt: skip
        kidneys = [organs[n]["centroid_mm"][2] for n in ABOVE_KIDNEYS[1] if organs[n]["centroid_mm"]]
        for name in ABOVE_KIDNEYS[0]:
            if kidneys and organs[name]["centroid_mm"]:
                row[f"{name}_above_kidneys_mm"] = organs[name]["centroid_mm"][2] - float(np.mean(kidneys))
        cases[case_id] = {key: round(value, 1) for key, value in row.items()}
    keys = sorted({key for row in cases.values() for key in row})
    ranges = {key: [min(r[key] for r in cases.values() if key in r), max(r[key] for r in cases.values() if key in r)]
              for key in keys}  # fmt: skip
    for key, (low, high) in ranges.items():
        print(f"{key}: {low:.1f} to {high:.1f} mm over {sum(key in r for r in cases.values())} cases")
    if args.out is not None:
        write_json_atomic(args.out, {"data_dir": str(args.data_dir), "ranges_mm": ranges, "cases": cases})
    return 0


if __name__ == "__main__":
    sys.exit(main())
