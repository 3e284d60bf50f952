"""seed_repeats.md: the tables of seed_repeats.json (`keras_cdseg.experiments.seed_repeats`) a reader can use."""

from keras_cdseg.experiments.cross_domain_report import delta_cell, mean_cell, model_rows
from keras_cdseg.experiments.cross_domain_results import MEAN, find
from keras_cdseg.experiments.cross_domain_settings import METHOD


def render_seed_repeats(record):
    """The whole seed_repeats.md as a string (Dice tables; seed_repeats.json also has ASSD and MSSD)."""
    organs = record["organs"]
    lines = ["# Training-seed repeats of the cross-domain benchmark", "",
             "The same folds, data and settings, trained again with another seed (`--train-seed`); cases pair one "
             "to one. Cells: mean Dice [95 % bootstrap interval over cases]; Δ: `*` where the interval excludes 0, "
             "p: Wilcoxon signed-rank, two-sided.", "",
             "| Results directory | Training seed | Status | Finished runs |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| `{r['dir']}` | {r['train_seed']} | {r['status']} | {r['finished_runs']} |" for r in record["repeats"]]
    lines += ["", "## Dice of each repeat, on the cases every repeat has", "",
              "| Model | Modality | Training seed | n | " + " | ".join(organs + ["mean over organs"]) + " |",
              "|---|---|---|---|" + "---|" * (len(organs) + 1)]  # fmt: skip
    for label, modality, cells in _variant_cells(record):
        for index, repeat in enumerate(cells[-1]["repeats"]):
            lines.append(f"| {label} | {modality} | {repeat['train_seed']} | {repeat['n']} | "
                         + " | ".join(mean_cell(c["repeats"][index], 3) for c in cells) + " |")  # fmt: skip
        lines.append(f"| {label} | {modality} | mean of {len(cells[-1]['repeats'])} | {cells[-1]['n_cases']} | "
                     + " | ".join(mean_cell(c["pooled"], 3) for c in cells) + " |")  # fmt: skip
    lines += ["", "## Retraining alone: a repeat minus the first, same model, same cases", "",
              "| Model | Modality | Seeds | n | " + " | ".join(organs + ["mean over organs", "p (mean)"]) + " |",
              "|---|---|---|---|" + "---|" * (len(organs) + 2)]  # fmt: skip
    for label, modality, cells in _variant_cells(record):
        for index, difference in enumerate(cells[-1]["seed_differences"]):
            lines.append(f"| {label} | {modality} | {difference['train_seed']} − {difference['minus_train_seed']} | "
                         f"{difference['n']} | " + " | ".join(delta_cell(c["seed_differences"][index], 3) for c in cells)
                         + f" | {_p(difference['wilcoxon_p'])} |")  # fmt: skip
    return "\n".join(lines + [""] + _pooled_comparisons(record)) + "\n"


def _pooled_comparisons(record):
    repeats = len(record["repeats"])
    lines = ["## The method, mean of its repeats, minus each model (mean Dice over organs)", "",
             f"Single seed: the first directory's comparison, on the cases the repeats share. Pooled: the method's per-case Dice averaged over its "
             f"repeats ({repeats}), minus the same model, averaged over its own repeats where it has some (marked with its number "
             "of seeds). The last column is how much the method's own repeats "
             "differ (the largest absolute Δ of a repeat against the first): a difference between two models below it is "
             "within what retraining one model moves.", "",
             "| Model | Modality | n | Δ single seed | p | Δ pooled | p | method's seed difference |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for modality in record["modalities"]:
        method = find(record["entries"], variant=METHOD, modality=modality, organ=MEAN, metric="dice")
        noise = max((abs(d["mean"]) for d in method["seed_differences"] if d["mean"] is not None), default=None) if method else None
        for label, variant in model_rows({"variants": record["reference_variants"]}, modality):
            entry = find(record["pooled_comparisons"], variant=variant, modality=modality, organ=MEAN, metric="dice")
            if not entry or not entry["pooled"]["n"]:
                continue
            single = entry["single_seed"]
            if entry["model_repeats"] > 1:
                label = f"{label} ({entry['model_repeats']} seeds)"
            lines.append(f"| {label} | {modality} | {entry['pooled']['n']} | {delta_cell(single, 3)} | "
                         f"{_p(single['wilcoxon_p'])} | {delta_cell(entry['pooled'], 3)} | {_p(entry['pooled']['wilcoxon_p'])} | "
                         f"{'n/a' if noise is None else f'{noise:.3f}'} |")  # fmt: skip
    return lines + [""]


def _variant_cells(record):
    """`(label, modality, Dice entries per organ then the mean)` of every repeated model that has a mean entry."""
    for variant, label in record["variants"].items():
        for modality in record["modalities"]:
            cells = [find(record["entries"], variant=variant, modality=modality, organ=o, metric="dice")
                     for o in (*record["organs"], MEAN)]  # fmt: skip
            if cells[-1]:
                yield label, modality, cells


def _p(p):
    return "n/a" if p is None else f"{p:.3g}"
