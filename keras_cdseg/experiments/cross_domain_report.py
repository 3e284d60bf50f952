"""results.md of the cross-domain benchmark: the results.json tables a reader can use, beside the anchors.

Per modality, one row per model: the one-network variants, the separate per-modality model of that modality
and the other modality's model applied zero-shot. Cells are `mean [95 % bootstrap CI]` over the test cases of
every finished fold; the status line says how much of the benchmark is behind the numbers.
"""

from keras_cdseg.experiments.cross_domain_results import ANCHORS, MEAN, find
from keras_cdseg.experiments.cross_domain_settings import METHOD, TRAINED_ON

METRIC_TITLES = {"dice": "Dice", "assd_mm": "ASSD (mm)", "mssd_mm": "MSSD (mm)"}
_DIGITS = {"dice": 3, "assd_mm": 1, "mssd_mm": 1}


def render_results(record):
    """The whole results.md as a string."""
    lines = ["# Cross-domain benchmark: one network for CT and MR against separate models", ""]
    lines += _status(record) + _settings(record)
    for metric in ("dice", "assd_mm", "mssd_mm"):
        for modality in record["modalities"]:
            lines += _metric_table(record, metric, modality)
    lines += _comparisons(record) + _runs(record)
    return "\n".join(lines) + "\n"


def model_rows(record, modality):
    """`(label, variant)` rows of one modality's tables, in reading order."""
    rows = []
    for variant, label in record["variants"].items():
        trained_on = TRAINED_ON.get(variant)
        if trained_on is None:
            rows.append((label, variant))
        elif trained_on == modality:
            rows.append((f"Separate models: {label}", variant))
    rows += [(f"Zero-shot: {label} on {modality}", variant) for variant, label in record["variants"].items()
             if TRAINED_ON.get(variant) not in (None, modality)]  # fmt: skip
    return rows


def _status(record):
    progress = record["progress"]
    lines = [f"**Status: {record['status']}; {progress['num_finished']} of {progress['num_planned']} runs finished"
             + (f", {progress['num_failed']} failed" if progress["num_failed"] else "") + ".**"]  # fmt: skip
    incomplete = {v: folds for v, folds in progress["folds_finished"].items() if len(folds) < progress["num_folds"]}
    if incomplete:
        parts = [f"{v} {len(f)}/{progress['num_folds']}" for v, f in incomplete.items()]
        lines.append(f"Folds finished per unfinished variant: {', '.join(parts)}. Means cover only the finished folds' "
                     "test cases, and paired comparisons only the cases both models have (n in each cell).")  # fmt: skip
    else:
        lines.append(f"Every planned variant finished all {progress['num_folds']} folds.")
    return lines + [""]


def _settings(record):
    settings, config = record["settings"], record["run_config"]
    counts = {}
    for fold in record["folds"]:
        for modality, n in fold["test_by_modality"].items():
            counts[modality] = counts.get(modality, 0) + n
    data, model, train = config["data"], config["model"], config["train"]
    per_fold = "; ".join(f"fold {f['fold']}: " + ", ".join(f"{n} {m}" for m, n in f["test_by_modality"].items())
                         for f in record["folds"])  # fmt: skip
    variants = ",".join(record["planned_variants"])
    train_seed = settings.get("train_seed")
    seed_flag = "" if train_seed is None else f" --train-seed {train_seed}"
    config_flag = f" --config {record['config_file']}" if record.get("config_file") else ""
    command = (f"cdseg experiment cross-domain --data {record['data_dir']} --out RESULTS_DIR --folds "
               f"{settings['num_folds']} --recipe {settings['recipe']}{config_flag} --steps {settings['steps']} --seed "
               f"{settings['seed']}{seed_flag} --variants {variants}")  # fmt: skip
    if train.get("val_fraction", 0.2) > 0:
        model_choice = "Each run's validation split (best-generator selection) comes from its fold's training cases."
    else:
        model_choice = "No scan is held out for validation (val_fraction 0): every run trains on all its fold's training cases and its last step is its model."
    timings = record["timings_s"]
    timing = (f"{timings['train_s_mean'] / 60:.1f} min training + {timings['evaluate_s_mean']:.0f} s evaluation per run "
              f"(mean of {timings['num_runs_timed']} runs timed)") if timings["train_s_mean"] else "none measured yet"  # fmt: skip
    return [
        "## Settings",
        "",
        "```bash",
        command,
        "```",
        "",
        f"- **Data**: `{record['data_dir']}`, {sum(counts.values())} labelled training cases ("
        + ", ".join(f"{n} {m}" for m, n in sorted(counts.items())) + f"); organs: {', '.join(record['organs']) or 'n/a'}.",
        f"- **Folds**: {settings['num_folds']}-fold cross-validation by patient, stratified by modality (seed "
        f"{settings['seed']}); every case is tested once, by models that never trained on it. Test cases: {per_fold}. "
        + model_choice,
        f"- **Every run** (same budget): recipe `{settings['recipe']}`, **{settings['steps']} steps**, batch "
        f"{train['batch_size']}, {data['image_size']} px at {data['target_spacing_mm']} mm, T = {data['context']}, "
        f"`{model['preset']}` preset, {model['base_filters'] or 'preset'} base filters, depth {model['depth'] or 'preset'}, "
        f"loss {train.get('loss', 'ce')}, Adam {train['learning_rate']} ({train.get('lr_schedule', 'constant')} "
        f"schedule), sampling {train.get('sampling', 'slices')}, augmentation "
        f"{train.get('augmentation', 'standard') if train.get('augment', True) else 'off'}, adversarial weight "
        f"{train['adversarial_weight']} (0 for no_adversarial), training seed {settings['seed'] if train_seed is None else train_seed}; "
        "variants change only their own fields (`keras_cdseg/experiments/cross_domain_settings.py`).",
        "- **Evaluation**: each fold's test cases (both modalities) with the largest 3D component (26-connected) kept "
        "per organ; Dice, ASSD, MSSD in mm. Cells: mean [95 % percentile-bootstrap interval over cases, "
        f"{settings['num_resamples']} resamples]; `mean` = per-case mean over the organs. An organ a model did not "
        "find scores Dice 0 and has no distance: such cases are counted (`m missed`) and left out of distance means.",
        f"- **Time**: {timing}.",
        "",
    ]


def _metric_table(record, metric, modality):
    organs = record["organs"]
    digits = _DIGITS[metric]
    lines = [f"## {METRIC_TITLES[metric]}, {modality}", "",
             "| Model | n | " + " | ".join(organs + ["mean over organs"]) + " |",
             "|---|---|" + "---|" * (len(organs) + 1)]  # fmt: skip
    for label, variant in model_rows(record, modality):
        cells = [find(record["aggregates"], variant=variant, modality=modality, organ=o, metric=metric)
                 for o in (*organs, MEAN)]  # fmt: skip
        n = cells[-1]["n"] + cells[-1]["n_missing"] if cells[-1] else 0
        bold = "**" if variant == METHOD else ""
        lines.append(f"| {bold}{label}{bold} | {n} | " + " | ".join(mean_cell(c, digits) for c in cells) + " |")
    for anchor in ANCHORS:
        if anchor["metric"] != metric:
            continue
        value = anchor["values"].get(modality, anchor["values"].get("CT+MR"))
        if value is None:
            continue
        cells = [str(value) if organ == anchor["organ"] else "" for organ in (*organs, MEAN)]
        lines.append(f"| *Anchor: {anchor['label']}* | | " + " | ".join(cells) + " |")
    return lines + [""]


def _comparisons(record):
    organs = record["organs"]
    lines = [f"## Paired comparisons: {METHOD} − model, same test cases", "",
             "Δ = the method's value minus the other model's, mean [95 % bootstrap interval] over the cases both have "
             "(`*`: the interval excludes 0); p: Wilcoxon signed-rank, two-sided. Dice: Δ > 0 favours the method; "
             "ASSD / MSSD: Δ < 0 favours it.", "",
             "| Model | Modality | Metric | n | " + " | ".join(organs + ["mean over organs", "p (mean)"]) + " |",
             "|---|---|---|---|" + "---|" * (len(organs) + 2)]  # fmt: skip
    for modality in record["modalities"]:
        for label, variant in model_rows(record, modality):
            if variant == METHOD:
                continue
            for metric in ("dice", "assd_mm", "mssd_mm"):
                cells = [find(record["comparisons"], variant=variant, modality=modality, organ=o, metric=metric)
                         for o in (*organs, MEAN)]  # fmt: skip
                if not cells[-1] or not cells[-1]["n"]:
                    continue
                p = cells[-1]["wilcoxon_p"]
                lines.append(f"| {label} | {modality} | {METRIC_TITLES[metric]} | {cells[-1]['n']} | "
                             + " | ".join(delta_cell(c, _DIGITS[metric]) for c in cells)
                             + f" | {'n/a' if p is None else f'{p:.3g}'} |")  # fmt: skip
    return lines + [""]


def _runs(record):
    variants = list(record["variants"])
    lines = ["## Runs", "", "| Fold | Test cases | " + " | ".join(variants) + " |", "|---|---|" + "---|" * len(variants)]
    by_key = {(r["fold"], r["variant"]): r for r in record["runs"]}
    for fold in record["folds"]:
        cells = []
        for variant in variants:
            run = by_key.get((fold["fold"], variant), {"status": "not planned"})
            train_s = run.get("train_s")
            cells.append(run["status"] + (f", {train_s / 60:.1f} min" if train_s else ""))
        tests = ", ".join(f"{n} {m}" for m, n in fold["test_by_modality"].items())
        lines.append(f"| {fold['fold']} | {tests} | " + " | ".join(cells) + " |")
    return lines + [""]


def mean_cell(entry, digits):
    """`mean [low, high]` of an aggregate, with the number of cases whose organ was missed (`n_missing`, if any)."""
    missing = (entry or {}).get("n_missing", 0)
    if not entry or entry["mean"] is None:
        return "n/a" if not missing else f"— ({missing} missed)"
    text = f"{entry['mean']:.{digits}f}"
    if entry["low"] is not None:
        text += f" [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"
    if missing:
        text += f" ({missing} missed)"
    return text


def delta_cell(entry, digits):
    """`+mean [+low, +high]` of a paired difference, `*` where the interval excludes 0."""
    if not entry or entry["mean"] is None:
        return "n/a"
    text = f"{entry['mean']:+.{digits}f}"
    if entry["low"] is not None:
        star = " *" if entry["low"] > 0 or entry["high"] < 0 else ""
        text += f" [{entry['low']:+.{digits}f}, {entry['high']:+.{digits}f}]{star}"
    return text
