"""`report.md`: the report as readable Markdown tables.

The first table follows Baydar et al. Table 2: one row per class, the scored metrics as columns, each cell
listing the modality groups' mean scores side by side (e.g. "CT / MR").
"""

import math

from keras_cdseg.evaluation.aggregate import ALL_GROUP

# (metric key, column title, format)
VALUE_COLUMNS = (
    ("dice", "Dice", "{:.3f}"),
    ("vo_percent", "VO %", "{:.1f}"),
    ("rvd_percent", "RVD %", "{:+.1f}"),
    ("assd_mm", "ASSD mm", "{:.2f}"),
    ("rmsd_mm", "RMSD mm", "{:.2f}"),
    ("mssd_mm", "MSSD mm", "{:.1f}"),
    ("hd95_mm", "HD95 mm", "{:.1f}"),
    ("precision", "Precision", "{:.3f}"),
    ("recall", "Recall", "{:.3f}"),
)
SCORE_TITLES = {
    "dice": "Dice", "vo": "VO", "voe": "VOE", "rvd": "RVD", "assd": "ASSD", "rmsd": "RMSD", "mssd": "MSSD",
    "overall": "Overall", "chaos_overall": "CHAOS total",
}


def render_markdown(report):
    """Returns the Markdown text of a report dict built by `build_report`."""
    settings = report["settings"]
    summary = report["summary"]
    lines = ["# Segmentation evaluation", ""]
    lines += [
        f"- Cases: {report['num_cases']}",
        f"- Scoring: `{settings['scoring']}` (0-100 per metric; overall = mean of "
        f"{', '.join(settings['score_thresholds']['overall']['mean_of'])})",
        f"- Largest component kept for: {', '.join(settings['largest_component_classes']) or 'none'}",
        f"- Border: {settings['border_convention']}",
    ]
    for key in ("pred_dir", "ref_dir", "model", "data"):
        if key in settings:
            lines.append(f"- {key}: `{settings[key]}`")
    lines.append(f"- Created {report['created_utc']} with keras_cdseg {report['versions']['keras_cdseg']}")
    lines.append("")

    class_names = list(summary)
    groups = list(next(iter(summary.values())))
    shown_groups = [g for g in groups if g != ALL_GROUP] or [ALL_GROUP]
    score_keys = [k for k in settings["score_thresholds"]["overall"]["mean_of"]] + ["overall"]
    lines += [f"## Scores, mean over cases ({' / '.join(shown_groups)})", ""]
    lines += _table(
        ["Class", *[SCORE_TITLES.get(k, k) for k in score_keys]],
        [
            [name] + [" / ".join(_fmt(summary[name][g]["scores"][k]["mean"], "{:.2f}") for g in shown_groups)
                      for k in score_keys]
            for name in class_names
            if summary[name][ALL_GROUP]["num_cases"]
        ],
    )

    lines += ["## Metric values: mean ± std (median)", ""]
    lines.append("A mean of `inf`/`nan` means some case had an empty mask (counted in *non-finite*); finite-only "
                 "means are in report.json (`mean_finite`).")
    lines.append("")
    for name in class_names:
        lines += [f"### {name}", ""]
        rows = []
        for group in groups:
            stats = summary[name][group]
            nonfinite = max(stats["metrics"][k]["num_nonfinite"] for k, _, _ in VALUE_COLUMNS)
            row = [group, str(stats["num_cases"])]
            for key, _, fmt in VALUE_COLUMNS:
                s = stats["metrics"][key]
                std_fmt = fmt.replace("+", "")
                row.append(f"{_fmt(s['mean'], fmt)} ± {_fmt(s['std'], std_fmt)} ({_fmt(s['median'], fmt)})")
            row.append(str(nonfinite))
            rows.append(row)
        lines += _table(["Group", "N", *[title for _, title, _ in VALUE_COLUMNS], "non-finite"], rows)

    flagged = [(c["case_id"], flag) for c in report["cases"] for flag in c["flags"]]
    lines += ["## Flags", ""]
    if flagged:
        lines += _table(["Case", "Flag"], [[case_id, f"`{flag}`"] for case_id, flag in flagged])
    else:
        lines += ["No empty or full masks.", ""]

    lines += ["## Per case", ""]
    rows = []
    for case in report["cases"]:
        for name, metrics in case["classes"].items():
            rows.append(
                [case["case_id"], case.get("modality") or "", name]
                + [_fmt(metrics[key], fmt) for key, _, fmt in VALUE_COLUMNS]
                + [_fmt(metrics["scores"]["overall"], "{:.2f}"), ", ".join(metrics["flags"])]
            )
    lines += _table(
        ["Case", "Modality", "Class", *[title for _, title, _ in VALUE_COLUMNS], "Overall", "Flags"], rows
    )
    return "\n".join(lines)


def _fmt(value, fmt):
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return fmt.format(value)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]
