"""RESULTS_DIR/report.md: the paper's Tables 2-5 and Fig. 2 from runs.json (pure Python + numpy/scipy).

Each score table has the paper's columns — VO, RVD, ASSD, RMSD, MSSD scores and their mean, Overall
(0-100, higher is better; `keras_cdseg.metrics.scores`) — plus Dice, one table per test group (CT, MR, all
cases), each cell the mean ± sample std over seeds of the per-run test-case means. Under each, the paired
difference of every row to Pre-BN + CAN (same seed) with a 95 % t-interval; `*` marks an interval that
excludes 0. A cell is "—" when no run of that row has finished.
"""

from keras_cdseg.experiments.stats import excludes_zero, mean_std, paired_difference
from keras_cdseg.experiments.variants import CONTEXT_ROWS, REFERENCE, VARIANTS, VARIANTS_BY_KEY

SCORE_COLUMNS = (
    ("VO", "vo"), ("RVD", "rvd"), ("ASSD", "assd"), ("RMSD", "rmsd"), ("MSSD", "mssd"), ("Overall", "overall")
)  # fmt: skip
GROUPS = (("CT", "CT"), ("MR", "MR"), ("all", "CT + MR"))
DASH = "—"


def run_values(runs, variant, group, key, kind="scores", class_name=None):
    """`{seed: value}` of one variant's finished runs: a score (`kind="scores"`) or metric of a test group."""
    values = {}
    for run in runs:
        if run["variant"] != variant or run["status"] != "finished":
            continue
        classes = run["classes"]
        entry = classes.get(class_name or primary_class(runs) or "", {}).get(group)
        if entry is not None and entry[kind].get(key) is not None:
            values[run["seed"]] = float(entry[kind][key])
    return values


def primary_class(runs):
    """"liver" if the runs have it, else their first foreground class (None without finished runs)."""
    for run in runs:
        if run["status"] == "finished":
            return "liver" if "liver" in run["classes"] else next(iter(run["classes"]), None)
    return None


def format_mean_std(values, digits=1):
    mean, std, n = mean_std(values)
    if n == 0:
        return DASH
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def format_difference(difference, digits=1):
    if difference["n"] == 0:
        return DASH
    text = f"{difference['mean']:+.{digits}f}"
    if difference["low"] is None:
        return text + " (n/a: 1 seed)"
    interval = f" [{difference['low']:+.{digits}f}, {difference['high']:+.{digits}f}]"
    return text + interval + (" *" if excludes_zero(difference) else "")


def score_table(runs, rows, group):
    """Markdown rows of `rows` = [(label, variant key, group or None)] for one test group."""
    header = "| Variant | " + " | ".join(name for name, _ in SCORE_COLUMNS) + " | Dice | seeds |"
    lines = [header, "|" + "---|" * (len(SCORE_COLUMNS) + 3)]
    for label, key, row_group in rows:
        group_of_row = row_group or group
        cells = [format_mean_std(run_values(runs, key, group_of_row, score).values()) for _, score in SCORE_COLUMNS]
        dice = run_values(runs, key, group_of_row, "dice", kind="metrics")
        seeds = len(run_values(runs, key, group_of_row, "overall"))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {format_mean_std(dice.values(), 3)} | {seeds} |")
    return lines


def difference_table(runs, rows, groups):
    """Paired Δ Overall (and Δ Dice) of each row to the reference, per group, as markdown lines."""
    header = "| Variant | " + " | ".join(f"Δ Overall {name}" for _, name in groups) + " | " + \
        " | ".join(f"Δ Dice {name}" for _, name in groups) + " |"  # fmt: skip
    lines = [header, "|" + "---|" * (2 * len(groups) + 1)]
    for label, key, row_group in rows:
        if key == REFERENCE:
            continue
        cells = []
        for kind, score_key, digits in (("scores", "overall", 1), ("metrics", "dice", 3)):
            for group, _ in groups:
                group_of_row = row_group or group
                difference = paired_difference(
                    run_values(runs, key, group_of_row, score_key, kind),
                    run_values(runs, REFERENCE, group_of_row, score_key, kind),
                )
                cells.append(format_difference(difference, digits))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def table_rows(table):
    """`[(label, variant key, None)]` of the variants listed in `table`, in `VARIANTS` order."""
    return [(v.label, v.key, None) for v in VARIANTS if table in v.tables]


def grouped_tables(runs, rows, title):
    lines = []
    for group, name in GROUPS:
        lines += ["", f"{title} — {name} test cases", ""] + score_table(runs, rows, group)
    lines += ["", f"Paired difference to {VARIANTS_BY_KEY[REFERENCE].label} (95 % t-interval over seeds)", ""]
    return lines + difference_table(runs, rows, GROUPS)


def table5_rows():
    return [(f"{'BN' if norm == 'bn' else 'IN'}, T={t}", CONTEXT_ROWS[(t, norm)], None)
            for norm in ("bn", "in") for t in (0, 1, 2, 3)]  # fmt: skip


def table4_rows():
    ref = VARIANTS_BY_KEY[REFERENCE].label
    return [("CT only, on CT", "ct_only", "CT"), (f"{ref} (cross-domain), on CT", REFERENCE, "CT"),
            ("MR only, on MR", "mr_only", "MR"), (f"{ref} (cross-domain), on MR", REFERENCE, "MR")]  # fmt: skip


def sparsity_table(runs):
    """Table 3: fraction of block responses that pass (positive after PReLU), pooled and block-averaged."""
    modalities = sorted({m for r in runs if r["status"] == "finished" for m in r["sparsity"] if m != "all"})
    groups = modalities + ["all"]
    lines = ["| Variant | " + " | ".join(f"{g} (pooled)" for g in groups) + " | " +
             " | ".join(f"{g} (mean over blocks)" for g in groups) + " |",
             "|" + "---|" * (2 * len(groups) + 1)]  # fmt: skip
    for label, key, _ in table_rows(2):
        cells = []
        for measure in ("overall", "mean_over_blocks"):
            for group in groups:
                values = [r["sparsity"][group][measure] for r in runs
                          if r["variant"] == key and r["status"] == "finished" and group in r["sparsity"]]  # fmt: skip
                cells.append(format_mean_std(values, 3))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def figure_lines(figure):
    if not figure:
        return ["", "Fig. 2 not drawn (needs a seed with Pre-BN + CAN and Post-BN + CAN finished)."]
    lines = ["", f"![Fig. 2]({figure['path']})", "",
             f"Kernels sampled (seed 0 of the sampler) from the seed-{figure['seed']} models; overlap of the CT and "
             "MR response histograms (1 = identical, 0 = disjoint) and mean responses:", "",
             "| kernel | Pre-BN overlap | Post-BN overlap | Pre-BN mean CT / MR | Post-BN mean CT / MR |",
             "|---|---|---|---|---|"]  # fmt: skip
    for entry in figure["kernels"]:
        def mean_pair(label):
            means = entry[label]["mean"]
            return " / ".join(DASH if means.get(m) is None else f"{means[m]:.3f}" for m in ("CT", "MR"))

        def overlap(label):
            return DASH if entry[label]["overlap"] is None else f"{entry[label]['overlap']:.2f}"

        lines.append(f"| {entry['kernel']} | {overlap('Pre-BN')} | {overlap('Post-BN')} | {mean_pair('Pre-BN')} | "
                     f"{mean_pair('Post-BN')} |")  # fmt: skip
    averages = [mean_std([e[label]["overlap"] for e in figure["kernels"]])[0] for label in ("Pre-BN", "Post-BN")]
    lines.append("| mean | " + " | ".join(DASH if a is None else f"{a:.2f}" for a in averages) + " | | |")
    return lines


def runs_table(runs):
    lines = ["| seed | variant | status | steps | best step | train s | evaluate s |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        train, timings = run.get("train") or {}, run.get("timings_s") or {}
        cells = [run["seed"], run["variant"], run["status"], train.get("steps_done", DASH), train.get("best_step", DASH),
                 timings.get("train_s", DASH), timings.get("evaluate_s", DASH)]  # fmt: skip
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return lines


def render_report(record, figure=None):
    """The markdown of report.md from the runs.json record and the Fig. 2 record (fig2.json, or None)."""
    runs = record["runs"]
    settings = record.get("settings") or {}
    seeds = sorted({r["seed"] for r in runs})
    counts = {}
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    lines = [
        "# Cross-domain ablation",
        "",
        f"Dataset: `{settings.get('data_dir')}`; status: {record.get('status')}; seeds {seeds}; runs: {counts}.",
        f"Class: {primary_class(runs)}. Settings: `{settings.get('settings')}`.",
        "",
        "Scores are 0-100 (higher is better), the mean over the dataset's test cases of one run; cells are mean ± "
        "sample std over seeds. Δ = variant − Pre-BN + CAN on the same seed, mean [95 % t-interval]; `*`: the "
        "interval excludes 0. With one seed there is no interval (n/a).",
        "",
        "## Table 2: normalization, CAN and the baselines",
    ]
    lines += grouped_tables(runs, table_rows(2), "Table 2")
    lines += ["", "## Table 3: sparsity (fraction of responses that pass to the next layer), test split", ""]
    lines += sparsity_table(runs)
    lines += ["", "## Table 4: single-modality models vs the cross-domain model, each on its own modality", ""]
    lines += score_table(runs, table4_rows(), None)
    lines += ["", f"Paired difference to {VARIANTS_BY_KEY[REFERENCE].label} on the same modality", ""]
    lines += difference_table(runs, [r for r in table4_rows() if r[1] != REFERENCE], (("", "(own modality)"),))
    lines += ["", "## Table 5: context T (2T+1 input slices), pre-norm + CAN"]
    lines += grouped_tables(runs, table5_rows(), "Table 5")
    lines += ["", "## Fig. 2: kernel responses on CT vs MR, pre-norm vs post-norm (BN + CAN)"]
    lines += figure_lines(figure)
    lines += ["", "## Runs", ""] + runs_table(runs)
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        lines += ["", "Failed runs:"] + [f"- seed {r['seed']} {r['variant']}: {r.get('error')}" for r in failed]
    return "\n".join(lines) + "\n"
