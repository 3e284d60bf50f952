"""Does a coarse (3 mm) CT make the benchmark's models over-segment? Fold models on their own CT test scans.

    python scripts/check_volume_bias_at_3mm.py RESULTS_DIR DATA_DIR [--variant method] [--spacing 3] [--out JSON]

The real full-range CT of `../shared/data/real` is 3 mm isotropic, and the bundled model over-segments all
four organs there (+15 % to +23 % volume). This separates one candidate cause, resolution, from the others
(full-range HU intensities, the reference's own convention): each fold's model predicts its CT test scans as
they are and resampled to `--spacing` mm isotropic (image: linear; reference: the class with the largest
linearly interpolated fraction, so volumes are kept), and the relative volume difference (RVD) and Dice of
both are compared per organ. Prints a table; `--out` writes the per-case rows and the summary as JSON.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def resample(image_path, label_path, spacing, out_dir):
    import nibabel as nib
    from scipy import ndimage

    image, label = nib.load(str(image_path)), nib.load(str(label_path))
    factor = np.asarray(image.header.get_zooms()[:3], np.float64) / spacing
    data = ndimage.zoom(np.asarray(image.get_fdata(), np.float32), factor, order=1)
    values = np.asarray(label.dataobj)
    classes = np.unique(values)
    fractions = np.stack([ndimage.zoom((values == k).astype(np.float32), factor, order=1) for k in classes])
    coarse_label = classes[fractions.argmax(0)].astype(np.uint8)
    affine = image.affine.copy()
    affine[:3, :3] = affine[:3, :3] / factor
    name = Path(image_path).name
    nib.save(nib.Nifti1Image(data, affine), str(out_dir / "images" / name))
    nib.save(nib.Nifti1Image(coarse_label, affine), str(out_dir / "labels" / name))
    return out_dir / "images" / name, out_dir / "labels" / name


def compare(prediction_path, label_path, organs):
    import nibabel as nib

    predicted, reference = (np.asarray(nib.load(str(p)).dataobj) for p in (prediction_path, label_path))
    rows = {}
    for name, value in organs.items():
        p, g = predicted == value, reference == value
        if g.any():
            rows[name] = {"dice": float(2 * (p & g).sum() / (p.sum() + g.sum())), "rvd": float(p.sum() / g.sum() - 1)}
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="the benchmark's RESULTS_DIR (with its runs' train/ directories)")
    parser.add_argument("data_dir", type=Path, help="the dataset the benchmark ran on (MSD layout)")
    parser.add_argument("--variant", default="method")
    parser.add_argument("--spacing", type=float, default=3.0, help="isotropic spacing of the coarse copies (mm)")
    parser.add_argument("--modality", default="CT")
    parser.add_argument("--out", type=Path, help="JSON with every case's rows and the summary")
    args = parser.parse_args(argv)
    folds = json.loads((args.results_dir / "folds.json").read_text())["folds"]
    from keras_cdseg.data.dataset import load_dataset

    index = load_dataset(args.data_dir)
    organs = {name: int(value) for name, value in index.labels.items() if int(value) != 0}
    by_id = {case.case_id: case for case in index.training}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for fold in folds:
            model = args.results_dir / "runs" / f"fold{fold['fold']}" / args.variant / "train"
            cases = [c for c in fold["test"] if c in by_id and by_id[c].modality == args.modality]
            if not model.is_dir() or not cases:
                print(f"fold {fold['fold']}: no {model} or no {args.modality} test scan; left out", file=sys.stderr)
                continue
            coarse = scratch / f"fold{fold['fold']}"
            for sub in ("images", "labels"):
                (coarse / sub).mkdir(parents=True)
            pairs = {c: (by_id[c].image, by_id[c].label) for c in cases}
            versions = {"native": pairs, f"{args.spacing:g}mm": {c: resample(*pairs[c], args.spacing, coarse) for c in cases}}
            for version, inputs in versions.items():
                out = coarse / f"predicted_{version}"
                subprocess.run(["cdseg", "predict", *[str(i) for i, _ in inputs.values()], "--model", str(model), "-o",
                                str(out), "--no-quality"], check=True, capture_output=True)  # fmt: skip
                for case, (image, label) in inputs.items():
                    for organ, values in compare(out / image.name, label, organs).items():
                        rows.append({"fold": fold["fold"], "case_id": case, "version": version, "organ": organ, **values})
            print(f"fold {fold['fold']}: {len(cases)} {args.modality} scans", file=sys.stderr)
    summary = []
    for version in dict.fromkeys(r["version"] for r in rows):
        for organ in organs:
            selected = [r for r in rows if r["version"] == version and r["organ"] == organ]
            if selected:
                rvd = [r["rvd"] for r in selected]
                summary.append({"version": version, "organ": organ, "n": len(selected),
                                "mean_dice": float(np.mean([r["dice"] for r in selected])),
                                "median_rvd": float(np.median(rvd)), "mean_rvd": float(np.mean(rvd))})  # fmt: skip
    print("| Input | Organ | n | mean Dice | median RVD | mean RVD |\n|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['version']} | {s['organ']} | {s['n']} | {s['mean_dice']:.3f} | {s['median_rvd']:+.1%} | {s['mean_rvd']:+.1%} |")
    if args.out:
        from keras_cdseg.io_utils import write_json_atomic

        write_json_atomic(args.out, {"settings": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "cases": rows})


if __name__ == "__main__":
    main()
