"""Plots of an ablation's runs.json: scores per variant with paired intervals, and the context sweep.

Each function takes the runs.json record, returns a matplotlib `Figure` (the object-oriented API: no
pyplot state, so it works in scripts and notebooks alike) and, given a path, writes a PNG atomically.
Needs matplotlib (`pip install -e ".[plots]"`).
"""

from keras_cdseg.experiments.report import table4_rows, table5_rows, table_rows, run_values
from keras_cdseg.experiments.stats import mean_std, paired_difference
from keras_cdseg.experiments.variants import REFERENCE
from keras_cdseg.io_utils import atomic_path

MODALITY_GROUPS = ("CT", "MR")


def scores_figure(record, path=None, score="overall"):
    """Table 2 at a glance: mean ± std of a score per variant and modality, and Δ to Pre-BN + CAN with 95 % CIs.

    Args:
        record: runs.json content.
        path: str, Path or None. PNG to write.
        score: str. Score key ("overall", "vo", "rvd", "assd", "rmsd", "mssd").

    Returns:
        matplotlib `Figure` with two panels.
    """
    from matplotlib.figure import Figure

    runs = record["runs"]
    rows = table_rows(2)
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    bars, deltas = figure.subplots(1, 2)
    width = 0.38
    for offset, group in zip((-width / 2, width / 2), MODALITY_GROUPS):
        stats = [mean_std(run_values(runs, key, group, score).values()) for _, key, _ in rows]
        means = [s[0] if s[0] is not None else 0.0 for s in stats]
        errors = [s[1] or 0.0 for s in stats]
        positions = [i + offset for i in range(len(rows))]
        bars.bar(positions, means, width, yerr=errors, capsize=2, label=group)
        differences = [
            paired_difference(run_values(runs, key, group, score), run_values(runs, REFERENCE, group, score))
            for _, key, _ in rows
        ]
        for position, difference in zip(positions, differences):
            if difference["mean"] is None:
                continue
            low = difference["low"] if difference["low"] is not None else difference["mean"]
            high = difference["high"] if difference["high"] is not None else difference["mean"]
            deltas.errorbar(difference["mean"], position, xerr=[[difference["mean"] - low], [high - difference["mean"]]],
                            fmt="o", capsize=2, color=f"C{MODALITY_GROUPS.index(group)}")  # fmt: skip
    labels = [label for label, _, _ in rows]
    bars.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    bars.set_ylabel(f"{score} score (mean ± std over seeds)")
    bars.legend(fontsize=8)
    deltas.axvline(0, color="grey", linewidth=0.8)
    deltas.set_yticks(range(len(rows)), labels, fontsize=8)
    deltas.invert_yaxis()
    deltas.set_xlabel(f"Δ {score} vs Pre-BN + CAN (paired, 95 % CI)")
    _save(figure, path)
    return figure


def context_figure(record, path=None, score="overall"):
    """Table 5 and Table 4 side by side: score vs context T for BN and IN; single- vs cross-domain models."""
    from matplotlib.figure import Figure

    runs = record["runs"]
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    context_ax, single_ax = figure.subplots(1, 2)
    rows = table5_rows()
    for norm_index, norm in enumerate(("BN", "IN")):
        keys = [key for label, key, _ in rows if label.startswith(norm)]
        for group_index, group in enumerate(MODALITY_GROUPS):
            stats = [mean_std(run_values(runs, key, group, score).values()) for key in keys]
            points = [(t, m, s or 0.0) for t, (m, s, _) in enumerate(stats) if m is not None]
            if points:
                ts, means, errors = zip(*points)
                context_ax.errorbar(ts, means, yerr=errors, marker="os"[norm_index], capsize=2,
                                    linestyle="-" if group == "CT" else "--", color=f"C{2 * norm_index + group_index}",
                                    label=f"Pre-{norm} + CAN, {group}")  # fmt: skip
    context_ax.set_xticks(range(4))
    context_ax.set_xlabel("context T (2T+1 input slices)")
    context_ax.set_ylabel(f"{score} score")
    if context_ax.get_legend_handles_labels()[0]:
        context_ax.legend(fontsize=7)
    single_rows = table4_rows()
    stats = [mean_std(run_values(runs, key, group, score).values()) for _, key, group in single_rows]
    single_ax.barh(range(len(single_rows)), [s[0] or 0.0 for s in stats], xerr=[s[1] or 0.0 for s in stats], capsize=2,
                   color=["C0", "C1", "C0", "C1"])  # fmt: skip
    single_ax.set_yticks(range(len(single_rows)), [label for label, _, _ in single_rows], fontsize=8)
    single_ax.invert_yaxis()
    single_ax.set_xlabel(f"{score} score on the model's own modality")
    _save(figure, path)
    return figure


def _save(figure, path):
    if path is None:
        return
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
