"""results.json of the cross-domain benchmark: per-case rows, bootstrap means and paired comparisons.

Cases are the unit: every training case is tested exactly once across the folds, by a model that never saw
it. Per variant x modality x organ and metric (Dice, ASSD, MSSD): the mean over cases with a percentile-
bootstrap 95 % interval; "mean" is the per-case mean over the organs. Paired comparisons take
`method - variant` on the cases both have (positive: the method has the higher value; for distances lower
is better). An organ absent from a case's reference is not scored for that case. An organ the model did not
find scores Dice 0 and has no surface distance: it is counted in `n_missing` and left out of distance means,
and the case's organ-mean distance is missing too.
"""

from keras_cdseg.experiments.cross_domain_settings import METHOD, VARIANTS_BY_KEY
from keras_cdseg.experiments.stats import bootstrap_mean, paired_bootstrap

FORMAT = "cdseg-cross-domain-results/1"
METRICS = ("dice", "assd_mm", "mssd_mm")
MEAN = "mean"
ABSENT_FLAGS = ("empty_gt", "both_empty")
ANCHORS = (
    {"key": "sifa_upper_bound", "label": "Per-modality supervised 2D models (SIFA's upper bound, Chen et al., "
     "IEEE TMI 2020)", "metric": "dice", "organ": MEAN, "values": {"CT": 0.887, "MR": 0.873}},
    {"key": "chaos_best_liver", "label": "CHAOS best single model, liver in CT and MR (Kavur et al., MedIA 2021)",
     "metric": "dice", "organ": "liver", "values": {"CT+MR": "0.88 ± 0.15"}},
    {"key": "chaos_best_liver_mssd", "label": "CHAOS best single model, liver MSSD (Kavur et al., MedIA 2021)",
     "metric": "mssd_mm", "organ": "liver", "values": {"CT+MR": 36.3}},
)  # fmt: skip


def build_results(claim, folds, results, planned, status=None):
    """The results.json content from the benchmark's claim (cross_domain.json), folds and run results.

    Args:
        claim: dict, the cross_domain.json content (data_dir, settings, run_config, config_file if one was given).
        folds: list of fold dicts (`folds.make_folds`).
        results: list of result.json contents (finished, failed).
        planned: list of variant keys the last call set out to run.
        status: "finished", "partial" (a subset of the variants finished, others outstanding), "interrupted", "running" or None.
    """
    settings = claim["settings"]
    finished = [r for r in results if r.get("status") == "finished"]
    rows = [{"variant": r["variant"], "fold": r["fold"], **row} for r in finished for row in r["cases"]]
    organs = _organs(rows)
    modalities = sorted({m for fold in folds for m in fold["test_by_modality"]})
    values = case_values(rows, organs)
    variants = _variant_order(planned, results)
    seed, resamples = settings["seed"], settings["num_resamples"]
    aggregates = [
        {"variant": v, "modality": m, "organ": o, "metric": k,
         "n_missing": sum(x is None for x in cells.values()),
         **bootstrap_mean(cells.values(), resamples, seed=seed)}
        for v in variants for m in modalities for o in (*organs, MEAN) for k in METRICS
        for cells in [values.get((v, m, o, k), {})]
    ]  # fmt: skip
    comparisons = [
        {"variant": v, "modality": m, "organ": o, "metric": k, "difference": f"{METHOD} - {v}",
         **paired_bootstrap(values.get((METHOD, m, o, k), {}), values.get((v, m, o, k), {}), resamples, seed=seed)}
        for v in variants if v != METHOD for m in modalities for o in (*organs, MEAN) for k in METRICS
    ]  # fmt: skip
    runs = _run_table(folds, results, variants)
    return {
        "format": FORMAT,
        "status": status or "running",
        "data_dir": claim["data_dir"],
        "settings": settings,
        "run_config": claim["run_config"],
        "config_file": claim.get("config_file"),
        "folds": folds,
        "planned_variants": list(planned),
        "variants": {v: VARIANTS_BY_KEY[v].label if v in VARIANTS_BY_KEY else v for v in variants},
        "organs": organs,
        "modalities": modalities,
        "progress": _progress(folds, runs, variants),
        "runs": runs,
        "timings_s": _timings(finished),
        "anchors": list(ANCHORS),
        "aggregates": aggregates,
        "comparisons": comparisons,
        "cases": rows,
    }


def case_values(rows, organs):
    """{(variant, modality, organ, metric): {case_id: value or None (not found)}}, "mean" organ included."""
    values = {}
    for row in rows:
        key = (row["variant"], row["modality"])
        scored = {o: v for o, v in row["organs"].items() if not set(v.get("flags", ())) & set(ABSENT_FLAGS)}
        for organ, metrics in scored.items():
            for metric in METRICS:
                values.setdefault((*key, organ, metric), {})[row["case_id"]] = metrics.get(metric)
        for metric in METRICS:
            found = [metrics.get(metric) for metrics in scored.values()]
            if found:
                mean = None if None in found else sum(found) / len(found)
                values.setdefault((*key, MEAN, metric), {})[row["case_id"]] = mean
    return values


def find(entries, **where):
    """The first entry of `entries` (aggregates or comparisons) whose fields equal `where`, or None."""
    return next((e for e in entries if all(e.get(k) == v for k, v in where.items())), None)


def _organs(rows):
    organs = []
    for row in rows:
        organs += [o for o in row["organs"] if o not in organs]
    return organs


def _variant_order(planned, results):
    keys = set(planned) | {r["variant"] for r in results}
    known = [k for k in VARIANTS_BY_KEY if k in keys]
    return known + sorted(keys - set(known))


def _run_table(folds, results, variants):
    by_key = {(r["fold"], r["variant"]): r for r in results}
    table = []
    for fold in folds:
        for variant in variants:
            result = by_key.get((fold["fold"], variant), {})
            entry = {"fold": fold["fold"], "variant": variant, "status": result.get("status", "pending")}
            if result.get("status") == "finished":
                entry.update(steps_done=result["train"]["steps_done"], **result.get("timings_s", {}))
            if result.get("status") == "failed":
                entry["error"] = result.get("error")
            table.append(entry)
    return table


def _progress(folds, runs, variants):
    finished = [(r["fold"], r["variant"]) for r in runs if r["status"] == "finished"]
    return {
        "num_planned": len(runs),
        "num_finished": len(finished),
        "num_failed": sum(r["status"] == "failed" for r in runs),
        "folds_finished": {v: [f["fold"] for f in folds if (f["fold"], v) in finished] for v in variants},
        "num_folds": len(folds),
    }


def _timings(finished):
    train = [r["timings_s"]["train_s"] for r in finished if "train_s" in r.get("timings_s", {})]
    evaluate = [r["timings_s"]["evaluate_s"] for r in finished if "evaluate_s" in r.get("timings_s", {})]
    return {
        "num_runs_timed": len(train),
        "train_s_total": round(sum(train), 1),
        "train_s_mean": round(sum(train) / len(train), 1) if train else None,
        "evaluate_s_mean": round(sum(evaluate) / len(evaluate), 1) if evaluate else None,
    }
