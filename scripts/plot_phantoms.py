"""Figure of the synthetic CT/MR phantoms: slices with label contours and liver-vs-spleen histograms.

    python scripts/plot_phantoms.py                       # -> docs/figures/phantoms.png (full size, seed 0)
    python scripts/plot_phantoms.py --size small --out /tmp/phantoms.png

Cases are generated in memory with the same generator as `cdseg synth` (case i of seed s is the same
phantom as `cdseg synth --seed s` writes as ct_00i / mr_00i). Slices are shown in the radiological
convention (patient's right on the left of the image, anterior up) after reorienting to RAS, whatever
orientation the case is stored in. Needs matplotlib (`pip install -e ".[plots]"`).
"""

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_cdseg.data.phantoms.synthetic import case_rng, make_case

CONTOURS = ((1, "liver", "#ff3030"), (2, "spleen", "#30ff30"), (3, "kidneys", "#40a0ff"))
CT_WINDOW_HU = (-160, 240)  # abdominal window W400 / L40


def _canonical(case):
    """Image and label reoriented to RAS, plus voxel size (mm)."""
    image = nib.as_closest_canonical(nib.Nifti1Image(case.image, case.affine))
    label = nib.as_closest_canonical(nib.Nifti1Image(case.label, case.affine))
    return np.asarray(image.dataobj).astype(np.float32), np.asarray(label.dataobj), image.header.get_zooms()


def _axial(ax, image, label, k, window, title):
    # RAS array: axis 0 -> patient's right, axis 1 -> anterior. Radiological display: right on the left,
    # anterior at the top.
    ax.imshow(image[::-1, ::-1, k].T, cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
    _contours(ax, label[::-1, ::-1, k].T)
    ax.text(0.02, 0.5, "R", color="yellow", transform=ax.transAxes, fontsize=9, va="center")
    ax.text(0.95, 0.5, "L", color="yellow", transform=ax.transAxes, fontsize=9, va="center")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _coronal(ax, image, label, j, zooms, window, title):
    ax.imshow(image[::-1, j, :].T, cmap="gray", vmin=window[0], vmax=window[1], origin="lower",
              aspect=zooms[2] / zooms[0], interpolation="nearest")  # fmt: skip
    _contours(ax, label[::-1, j, :].T, origin="lower")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _contours(ax, label_slice, origin=None):
    for value, _, color in CONTOURS:
        if (label_slice == value).any():
            ax.contour(label_slice == value, levels=[0.5], colors=[color], linewidths=0.8, origin=origin)


def _panel_images(axes, case, name):
    image, label, zooms = _canonical(case)
    window = CT_WINDOW_HU if case.modality == "CT" else tuple(np.percentile(image, [0.5, 99.5]))
    upper = int(np.argmax((label == 2).sum(axis=(0, 1)) + 0.2 * (label == 1).sum(axis=(0, 1))))
    lower = int(np.argmax((label == 3).sum(axis=(0, 1))))
    j = int(np.round(np.nonzero(label == 1)[1].mean()))
    info = case.info
    spacing = "x".join(f"{s:.2g}" for s in info["spacing_mm"])
    _axial(axes[0], image, label, upper, window, f"{name} {info['orientation']}-stored, {spacing} mm")
    _axial(axes[1], image, label, lower, window, f"{name} kidneys level")
    _coronal(axes[2], image, label, j, zooms, window, f"{name} coronal")


def _histograms(ax, cases, xlabel, log_x):
    colors = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")

    def values(case, value):
        data = case.image[case.label == value].astype(np.float64)
        return np.log10(np.maximum(data, 1.0)) if log_x else data

    pooled = np.concatenate([values(case, v) for case in cases for v in (1, 2)])
    bins = np.linspace(*np.percentile(pooled, [0.5, 99.5]), 90)
    for case, color in zip(cases, colors):
        for value, organ, style in ((1, "liver", "-"), (2, "spleen", "--")):
            ax.hist(values(case, value), bins=bins, density=True, histtype="step", color=color, linestyle=style,
                    label=f"{case.info['case_id']} {organ}")  # fmt: skip
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_yticks([])
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, frameon=False)


def make_figure(out, seed=0, size="full", num_mr_histograms=3, dpi=60):
    """Writes the figure to `out` (PNG) and returns the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_phantoms.py needs matplotlib: pip install -e '.[plots]'")

    ct = make_case("CT", case_rng(seed, "CT", 0), size=size)
    ct.info["case_id"] = "ct_000"
    mrs = []
    for i in range(num_mr_histograms):
        case = make_case("MR", case_rng(seed, "MR", i), size=size)
        case.info["case_id"] = f"mr_{i:03d}"
        mrs.append(case)

    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
    _panel_images([axes[0, 0], axes[0, 1], axes[1, 0]], ct, "CT ct_000")
    _panel_images([axes[0, 2], axes[0, 3], axes[1, 1]], mrs[0], "MR mr_000")
    _histograms(axes[1, 2], [ct], "CT intensity (HU)", log_x=False)
    axes[1, 2].set_title("CT: liver vs spleen overlap", fontsize=9)
    _histograms(axes[1, 3], mrs, "log10 MR intensity (arbitrary units)", log_x=True)
    axes[1, 3].set_title("MR: liver > spleen, per-case scale", fontsize=9)
    handles = [plt.Line2D([], [], color=c, label=n) for _, n, c in CONTOURS]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/figures/phantoms.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=("small", "full"), default="full")
    parser.add_argument("--dpi", type=int, default=60)
    args = parser.parse_args(argv)
    out = make_figure(args.out, seed=args.seed, size=args.size, dpi=args.dpi)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
