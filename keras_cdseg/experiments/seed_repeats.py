"""Training-seed repeats of the cross-domain benchmark: how far apart two training runs of one model are.

The benchmark's intervals are over test cases: they say how sure the mean of *these* trained models is, not
how much a retrained model would move. A repeat (`cdseg experiment cross-domain --train-seed S`: the same
data, folds and settings, another training seed) retrains on the same folds, so its cases pair one to one
with the first directory's. For every variant that two or more repeats have, per modality and organ:

- `repeats`: each repeat's mean over the cases the repeats share, with its bootstrap interval;
- `seed_differences`: a later repeat minus the first, paired by case: what retraining alone changes;
- `pooled`: the per-case mean over the repeats, then its mean over cases and interval.

And `pooled_comparisons`: the method's pooled values minus each other model of the first directory (pooled
too where that model was repeated; `model_repeats` says how often), paired by case, beside the first
directory's single-seed comparison on the same cases. A difference between two models smaller than the
method's own seed difference is within what retraining one model moves.
"""

from pathlib import Path

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain_results import MEAN, METRICS, case_values
from keras_cdseg.experiments.cross_domain_settings import METHOD
from keras_cdseg.experiments.resumable import differences, read_json, resolved_run_config
from keras_cdseg.experiments.stats import bootstrap_mean, paired_bootstrap

FORMAT = "cdseg-seed-repeats/1"
JSON_FILE, MARKDOWN_FILE = "seed_repeats.json", "seed_repeats.md"


def training_seed(settings):
    """The training seed of a benchmark's settings (`train_seed`, else the shared `seed`)."""
    return settings.get("train_seed", settings["seed"])


def compare_repeats(result_dirs):
    """The seed_repeats.json content of two or more cross-domain results directories (the first is the reference).

    Raises:
        InputError: fewer than two directories, one without results.json, repeats of other data, folds or
            settings than the first, or two repeats with the same training seed.
    """
    result_dirs = [Path(d) for d in result_dirs]
    if len(result_dirs) < 2:
        raise InputError("RESULTS_DIR", f"compare at least two repeats. Received: {len(result_dirs)}")
    records = [_load(d) for d in result_dirs]
    _check_repeats(records, result_dirs)
    first = records[0]
    seeds = [training_seed(r["settings"]) for r in records]
    resamples, boot_seed = first["settings"]["num_resamples"], first["settings"]["seed"]
    organs = [o for o in first["organs"] if all(o in r["organs"] for r in records)] + [MEAN]
    values = [case_values(r["cases"], r["organs"]) for r in records]
    runs_of = {v: sum(v in r["variants"] for r in records) for v in first["variants"]}
    variants = [v for v in first["variants"] if runs_of[v] >= 2]

    entries, pooled_values = [], {}
    for variant in variants:
        have = [i for i, r in enumerate(records) if variant in r["variants"]]
        for modality in first["modalities"]:
            for organ in organs:
                for metric in METRICS:
                    per_repeat = [values[i].get((variant, modality, organ, metric), {}) for i in have]
                    cases = sorted(set.intersection(*(set(p) for p in per_repeat)))
                    if not cases:
                        continue
                    shared = [{c: p[c] for c in cases} for p in per_repeat]
                    pooled = {c: _mean_or_none([p[c] for p in shared]) for c in cases}
                    pooled_values[(variant, modality, organ, metric)] = pooled
                    entries.append({
                        "variant": variant, "modality": modality, "organ": organ, "metric": metric,
                        "n_cases": len(cases),
                        "repeats": [{"train_seed": seeds[i], **bootstrap_mean(p.values(), resamples, seed=boot_seed)}
                                    for i, p in zip(have, shared)],
                        "seed_differences": [{"train_seed": seeds[i], "minus_train_seed": seeds[have[0]],
                                              **paired_bootstrap(p, shared[0], resamples, seed=boot_seed)}
                                             for i, p in zip(have[1:], shared[1:])],
                        "pooled": bootstrap_mean(pooled.values(), resamples, seed=boot_seed),
                    })  # fmt: skip
    comparisons = []
    for v in (v for v in first["variants"] if v != METHOD):
        for m, o, k in ((m, o, k) for m in first["modalities"] for o in organs for k in METRICS):
            method, single = pooled_values.get((METHOD, m, o, k)), values[0].get((v, m, o, k))
            if not method or not single:
                continue
            # A model repeated too is averaged over its own repeats: both sides then carry less training noise.
            model = pooled_values.get((v, m, o, k), single)
            comparisons.append({
                "variant": v, "modality": m, "organ": o, "metric": k, "difference": f"{METHOD} (pooled) - {v}",
                "model_repeats": runs_of[v] if (v, m, o, k) in pooled_values else 1,
                "pooled": paired_bootstrap(method, model, resamples, seed=boot_seed),
                "single_seed": paired_bootstrap({c: values[0][(METHOD, m, o, k)][c] for c in method if c in model}, single,
                                                resamples, seed=boot_seed),  # the same cases as "pooled"
            })  # fmt: skip
    return {
        "format": FORMAT,
        "repeats": [{"dir": str(d), "train_seed": s, "status": r["status"],
                     "finished_runs": r["progress"]["num_finished"]} for d, s, r in zip(result_dirs, seeds, records)],  # fmt: skip
        "settings": {k: v for k, v in first["settings"].items() if k != "train_seed"},
        "variants": {v: first["variants"][v] for v in variants},
        "reference_variants": first["variants"],
        "modalities": first["modalities"],
        "organs": organs[:-1],
        "entries": entries,
        "pooled_comparisons": comparisons,
    }


def write_seed_repeats(result_dirs, out_dir):
    """Writes OUT/seed_repeats.json and OUT/seed_repeats.md (atomically); returns the JSON content."""
    from keras_cdseg.experiments.seed_repeats_report import render_seed_repeats
    from keras_cdseg.io_utils import write_json_atomic, write_text_atomic

    record = compare_repeats(result_dirs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / JSON_FILE, record)
    write_text_atomic(out_dir / MARKDOWN_FILE, render_seed_repeats(record))
    return record


def _load(result_dir):
    if not result_dir.is_dir():
        raise InputError(result_dir, "results directory not found")
    record = read_json(result_dir / "results.json")
    if record is None:
        raise InputError(result_dir, "no results.json: not a cross-domain results directory (or none written yet)")
    return record


def _check_repeats(records, result_dirs):
    first, seeds = records[0], {}
    for path, record in zip(result_dirs, records):
        if record["folds"] != first["folds"]:
            raise InputError(path, f"its folds differ from {result_dirs[0]}'s: repeats must share the folds (--seed)")
        settings = {k: v for k, v in record["settings"].items() if k != "train_seed"}
        wanted = {k: v for k, v in first["settings"].items() if k != "train_seed"}
        config = _without_seed(resolved_run_config(record["run_config"]))
        wanted_config = _without_seed(resolved_run_config(first["run_config"]))
        if settings != wanted or config != wanted_config:
            changed = differences(wanted, settings) or differences(wanted_config, config)
            raise InputError(path, f"is not a repeat of {result_dirs[0]}: other settings ({changed})")
        seed = training_seed(record["settings"])
        if seed in seeds:
            raise InputError(path, f"has training seed {seed}, like {seeds[seed]}; a repeat needs another --train-seed")
        seeds[seed] = path


def _without_seed(run_config):
    return {**run_config, "train": {k: v for k, v in run_config["train"].items() if k != "seed"}}


def _mean_or_none(values):
    return None if any(v is None for v in values) else sum(values) / len(values)
