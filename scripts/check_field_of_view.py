"""Fold networks on their test scans, with the scan cropped to the network's window (as `cdseg predict` runs) and
on a canvas that holds the whole field of view: per-organ Dice of both, and the window check of the first.

    python scripts/check_field_of_view.py BENCHMARK_DIR --out OUT.json [--fold N ...]

BENCHMARK_DIR is a `cdseg experiment cross-domain` directory whose folds still have their networks
(`runs/foldN/method/train/last_generator.keras`; the committed copies under docs/results keep no networks).
The canvas is the smallest multiple of 16 pixels (the U-Net's down-sampling) at least the window and the scan's
wider side: the same weights, rebuilt for that input size (a fully convolutional network takes any such size).
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fold", type=int, action="append", help="folds to run (default: every fold with a network)")
    args = parser.parse_args(argv)

    import dataclasses

    import keras

    from keras_cdseg.config import RunConfig, load_json
    from keras_cdseg.data import nifti_io
    from keras_cdseg.data.preprocessing import volume_geometry
    from keras_cdseg.inference.quality.anatomy import anatomy_warnings, organ_summary
    from keras_cdseg.inference.quality.assess import dice_of
    from keras_cdseg.inference.volume import keras_predictor, predict_volume
    from keras_cdseg.io_utils import write_json_atomic
    from keras_cdseg.models.saving import load_generator

    folds = load_json(args.benchmark / "folds.json")["folds"]
    rows = []
    for fold in folds:
        run = args.benchmark / "runs" / f"fold{fold['fold']}" / "method" / "train"
        if (args.fold and fold["fold"] not in args.fold) or not (run / "last_generator.keras").is_file():
            continue
        config = RunConfig.from_dict(load_json(run / "config.json")["run"])
        network = load_generator(run / "last_generator.keras")
        dataset = load_json(args.benchmark / "folds" / f"fold{fold['fold']}" / "dataset.json")
        labels = dataset["labels"]
        values = [int(v) for v in labels.values() if int(v) != 0]
        multiple = 2 ** config.model.depth
        for entry in dataset["test"]:
            image = nifti_io.load_image(entry["image"])
            reference = np.asarray(nifti_io.load_label(entry["label"]).data)
            geometry = volume_geometry(image, config.data)
            canvas = max(config.data.image_size, multiple * math.ceil(max(geometry.resampled_shape) / multiple))
            row = {"case_id": nifti_io.case_name(entry["image"]), "fold": fold["fold"], "modality": entry.get("modality"),
                   "field_of_view_mm": [round(n * s, 1) for n, s in zip(geometry.canonical_shape[:2], geometry.canonical_spacing_mm[:2])],
                   "window_px": config.data.image_size, "canvas_px": canvas}  # fmt: skip
            for mode, size in (("window", config.data.image_size), ("canvas", canvas)):
                if mode == "canvas" and size == config.data.image_size:
                    row["canvas"] = row["window"]
                    continue
                model = network
                if size != config.data.image_size:
                    model = keras.models.clone_model(network, input_tensors=keras.Input((size, size, network.input_shape[-1])))
                    model.set_weights(network.get_weights())
                prediction = predict_volume(keras_predictor(model), image, dataclasses.replace(config.data, image_size=size),
                                            largest_component_classes=values)  # fmt: skip
                row[mode] = {name: round(dice_of(reference == int(v), prediction.labels == int(v)), 4)
                             for name, v in labels.items() if int(v) != 0}  # fmt: skip
                if mode == "window":
                    organs = organ_summary(prediction.labels, image.affine, labels, prediction.geometry)
                    row["window_edge"] = {name: organ["window_edge"] for name, organ in organs.items() if "window_edge" in organ}
                    row["warnings"] = [w["reason"] for w in anatomy_warnings(organs) if w["code"] == "organ_cut_by_window"]
            rows.append(row)
            print(f"fold {row['fold']} {row['case_id']}: {canvas} px, window "
                  + " ".join(f"{d:.3f}" for d in row["window"].values()) + "  canvas "
                  + " ".join(f"{d:.3f}" for d in row["canvas"].values()) + ("  " + row["warnings"][0] if row["warnings"] else ""),
                  flush=True)  # fmt: skip
    if not rows:
        print(f"Error: {args.benchmark}: no fold has its network (runs/foldN/method/train/last_generator.keras)", file=sys.stderr)
        return 2
    enlarged = [r for r in rows if r["canvas_px"] > r["window_px"]]
    summary = {}
    for group, members in (("all", rows), ("wider_than_window", enlarged)):
        if members:
            mean = {mode: float(np.mean([np.mean(list(r[mode].values())) for r in members])) for mode in ("window", "canvas")}
            summary[group] = {"scans": len(members), **{f"{k}_mean_dice": round(v, 4) for k, v in mean.items()},
                              "canvas_minus_window": round(mean["canvas"] - mean["window"], 4)}  # fmt: skip
    write_json_atomic(args.out, {"benchmark": str(args.benchmark), "summary": summary, "cases": rows})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
