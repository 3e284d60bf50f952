"""Where each intensity rule puts every organ: the covariate shift a rule leaves, measured without training.

    python scripts/organ_intensities_by_rule.py DATA_DIR [--real-ct SCAN --real-ct-labels LABELS] [--out JSON]

Every labelled case of DATA_DIR (a `cdseg preprocess` dataset) is prepared as the bundled model's recipe
prepares it (128 px at 2.5 mm) under each rule of `keras_cdseg.config.INTENSITY_RULES`, and each organ's median
prepared value is taken. Per modality, the table gives the mean and standard deviation of those medians over
the cases: how far apart the organs sit (the contrast the network starts from) and how much one organ moves
from scan to scan. With `--real-ct`, a full-range HU CT is prepared as stored and clipped to [-125, 275] HU
(the window BTCV's CT is stored in): a rule that removes the window's covariate shift gives both the same
values, and the values the training CT has. Its labels are TotalSegmentator's (liver 5, right kidney 2, left
kidney 3, spleen 1), as in scripts/check_real_ct_across_models.sh. No model is involved.
"""

import argparse

import numpy as np

ORGANS = ("liver", "right_kidney", "left_kidney", "spleen")
TOTALSEGMENTATOR_VALUES = {"liver": 5, "right_kidney": 2, "left_kidney": 3, "spleen": 1}
BTCV_WINDOW_HU = (-125.0, 275.0)


def organ_medians(image, label, values, config):
    from keras_cdseg.data.preprocessing import prepare_volume

    prepared = prepare_volume(image, config, label)
    return {organ: float(np.median(prepared.image[prepared.label == value]))
            for organ, value in values.items() if np.any(prepared.label == value)}  # fmt: skip


def _cell(cell):
    return f"{cell['mean']:.2f} ± {cell['sd']:.2f}" if cell["n"] else "not labelled"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir")
    parser.add_argument("--real-ct", help="a full-range HU CT (e.g. ../shared/data/real/ct_abdomen_3mm.nii.gz)")
    parser.add_argument("--real-ct-labels", help="its organ labels (TotalSegmentator's values)")
    parser.add_argument("--out", help="OUT.json: per case and per rule, each organ's median value")
    args = parser.parse_args()

    from keras_cdseg.config import INTENSITY_RULES, DataConfig
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.data.nifti_io import Volume, load_image, load_label
    from keras_cdseg.io_utils import write_json_atomic

    index = load_dataset(args.data_dir)
    configs = {rule: DataConfig(image_size=128, target_spacing_mm=2.5, intensity=rule) for rule in INTENSITY_RULES}
    organ_values = {organ: index.labels[organ] for organ in ORGANS if organ in index.labels}
    rows = []
    for case in index.training:
        image, label = load_image(case.image), load_label(case.label)
        rows.append({"case_id": case.case_id, "modality": case.modality,
                     "medians": {rule: organ_medians(image, label, organ_values, config)
                                 for rule, config in configs.items()}})  # fmt: skip
    if args.real_ct:
        image, label = load_image(args.real_ct), load_label(args.real_ct_labels)
        windowed = Volume(np.clip(np.asarray(image.data, np.float32), *BTCV_WINDOW_HU), image.affine)
        for name, volume in (("real CT, full-range", image), ("real CT, windowed", windowed)):
            rows.append({"case_id": name, "modality": "real CT",
                         "medians": {rule: organ_medians(volume, label, TOTALSEGMENTATOR_VALUES, config)
                                     for rule, config in configs.items()}})  # fmt: skip

    summary = {}
    organs = [organ for organ in ORGANS if organ in organ_values]
    print("| rule | group | " + " | ".join(organs) + " |")
    print("|---|---|" + "---|" * len(organs))
    for rule in INTENSITY_RULES:
        for group in sorted({row["modality"] for row in rows if row["modality"] != "real CT"}):
            medians = [row["medians"][rule] for row in rows if row["modality"] == group]
            cells = {}
            for organ in organs:
                found = [m[organ] for m in medians if organ in m]
                cells[organ] = ({"mean": float(np.mean(found)), "sd": float(np.std(found)), "n": len(found)}
                                if found else {"n": 0})  # fmt: skip
            summary.setdefault(rule, {})[group] = cells
            print(f"| {rule} | {group} ({len(medians)}) | "
                  + " | ".join(_cell(cells[o]) for o in organs) + " |")  # fmt: skip
        for row in rows:
            if row["modality"] == "real CT":
                print(f"| {rule} | {row['case_id']} | " + " | ".join(f"{row['medians'][rule][o]:.2f}" for o in organs) + " |")
    if args.out:
        write_json_atomic(args.out, {"data_dir": args.data_dir, "image_size": 128, "target_spacing_mm": 2.5,
                                     "summary": summary, "cases": rows})  # fmt: skip
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
