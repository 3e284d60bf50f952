"""`run_ablation`: train, evaluate and analyse every (seed, variant) run of the ablation, resumably.

    RESULTS_DIR/
      ablation.json                   shared settings + dataset; a later call must match them
      cache/                          prepared training volumes, shared by every run
      runs/seed<S>/<variant>/train/       the run directory of `train()` (config, checkpoints, history)
      runs/seed<S>/<variant>/evaluation/  `evaluate_model` report of the dataset's test split
      runs/seed<S>/<variant>/result.json  config, split, scores, metrics, sparsity, timings of the run
      runs.json                       every result.json, in one list
      fig2_response_histograms.png    Fig. 2 (+ fig2.json: kernels, overlaps, means)
      report.md                       Tables 2-5 (see `report.render_report`)

A run is done when its result.json says "finished" (or "failed": non-finite loss, kept as a result). A run
with a checkpoint is resumed (`train(..., resume=True)`); a finished training without an evaluation report
is evaluated; a half-written evaluation is redone. Every file is written atomically.
"""

import json
import shutil
import sys
import time
from pathlib import Path

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.variants import REFERENCE, TABLES, VARIANTS_BY_KEY, AblationSettings, select_variants
from keras_cdseg.experiments.resumable import clock, differences, read_json, train_for_result
from keras_cdseg.io_utils import write_json_atomic, write_text_atomic

SETTINGS_FILE = "ablation.json"
RUNS_FILE = "runs.json"
RESULT_FILE = "result.json"
REPORT_FILE = "report.md"
FIGURE_FILE = "fig2_response_histograms.png"
FIGURE_JSON = "fig2.json"
DONE = ("finished", "failed")


def run_root(out_dir, seed, key):
    return Path(out_dir) / "runs" / f"seed{seed}" / key


def run_ablation(data_dir, out_dir, settings=AblationSettings(), seeds=(0, 1, 2), tables=TABLES, only=None,
                 verbose=0, log=None, figure=True):  # fmt: skip
    """Runs (or resumes) the ablation and writes runs.json, Fig. 2 and report.md; returns the runs.json content.

    Args:
        data_dir: dataset directory (MSD layout); its test split is the evaluation set of every run.
        out_dir: RESULTS_DIR. Created; an existing one must hold the same settings and dataset.
        settings: `AblationSettings` shared by every run.
        seeds: iterable of int. One run of each variant per seed (weights, train/val split, data order).
        tables: iterable of int among 2, 3, 4, 5: which tables' variants to run.
        only: iterable of variant keys or None. Run only these (plus the reference).
        verbose: Keras `fit` verbosity of each run.
        log: callable(str) for progress lines; defaults to stderr.
        figure: bool. Draw Fig. 2 when a pre-norm and a post-norm BN model with CAN are finished.

    Returns:
        `{"settings": ..., "runs": [result, ...], "status": "finished" | "interrupted"}`.

    Raises:
        InputError: unreadable dataset, a results directory of other settings, unknown tables or variants.
    """
    from keras_cdseg.data.dataset import load_dataset

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir, seeds = Path(out_dir), [int(s) for s in seeds]
    if not seeds:
        raise InputError("--seeds", "at least one seed is needed")
    index = load_dataset(data_dir)
    _claim_out_dir(out_dir, index.root, settings)
    variants = select_variants(tables, only)
    todo = [(seed, v) for seed in seeds for v in variants]
    done_before = sum(_is_done(run_root(out_dir, s, v.key)) for s, v in todo)
    log(f"ablation: {len(variants)} variants x {len(seeds)} seed(s) = {len(todo)} runs ({done_before} already done) "
        f"-> {out_dir}")  # fmt: skip

    from keras_cdseg.experiments.slices import PreparedTestSplit

    test_slices = PreparedTestSplit(index.root)
    started, trained_times, status = time.perf_counter(), [], "finished"
    for number, (seed, variant) in enumerate(todo, 1):
        root = run_root(out_dir, seed, variant.key)
        prefix = f"[{number}/{len(todo)}] seed {seed} {variant.key}"
        if _is_done(root):
            log(f"{prefix}: done, skipped")
            continue
        remaining = sum(not _is_done(run_root(out_dir, s, v.key)) for s, v in todo[number - 1 :])
        eta = f", ~{clock(remaining * sum(trained_times) / len(trained_times))} left" if trained_times else ""
        log(f"{prefix} ({variant.label}): {clock(time.perf_counter() - started)} elapsed{eta}")
        run_started = time.perf_counter()
        result = run_one(variant, seed, index.root, out_dir, settings, test_slices, verbose=verbose, log=log)
        trained_times.append(time.perf_counter() - run_started)
        write_runs_json(out_dir)
        if result["status"] == "interrupted":
            status = "interrupted"
            log(f"{prefix}: interrupted; run the same command again to resume")
            break
        _log_result(prefix, result, log)

    if figure and status == "finished":
        try:
            make_figure(out_dir, test_slices, log)
        except InputError as e:
            log(f"Fig. 2 skipped: {e}")
    record = _write_report(out_dir, status)
    log(f"ablation {status} in {clock(time.perf_counter() - started)}: {out_dir / REPORT_FILE}")
    return record


def rebuild_report(out_dir):
    """Rewrites runs.json and report.md from the result.json files already in `out_dir`; returns runs.json."""
    out_dir = Path(out_dir)
    if read_json(out_dir / SETTINGS_FILE) is None:
        raise InputError(out_dir, f"not an ablation results directory (no {SETTINGS_FILE})")
    return _write_report(out_dir, status=None)


def _write_report(out_dir, status):
    from keras_cdseg.experiments.report import render_report

    record = write_runs_json(out_dir, status=status)
    write_text_atomic(out_dir / REPORT_FILE, render_report(record, _figure_record(out_dir)))
    return record


def run_one(variant, seed, data_dir, out_dir, settings, test_slices, verbose=0, log=None):
    """Trains (or resumes), evaluates and analyses one run; writes and returns its result.json content.

    Returns a dict with "status": "finished", "failed" (non-finite loss: `TrainingError`, recorded) or
    "interrupted" (Ctrl-C during training; nothing recorded, resumable).
    """
    from keras_cdseg.run_dir import load_run

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    root = run_root(out_dir, seed, variant.key)
    train_dir, eval_dir = root / "train", root / "evaluation"
    run_config = settings.run_config(variant, seed, data_dir, cache_dir=Path(out_dir) / "cache")
    summary, timings, ended = train_for_result(run_config, root, _base_result(variant, seed, root, out_dir), verbose,
                                               lambda t: log(f"    {t}"), RESULT_FILE)  # fmt: skip
    if ended is not None:
        return ended

    from keras_cdseg.evaluation.model_cases import evaluate_model
    from keras_cdseg.inference.predictors import load_predictor

    started = time.perf_counter()
    predictor = load_predictor(train_dir)
    report = read_json(eval_dir / "report.json")
    if report is None:
        if eval_dir.exists():
            shutil.rmtree(eval_dir)
        report = evaluate_model(predictor, data_dir, eval_dir, split="test", overlays=False, progress=False,
                                model_path=train_dir)  # fmt: skip
        report = read_json(eval_dir / "report.json")  # the JSON-safe form (non-finite values spelled out)
    timings["evaluate_s"] = round(time.perf_counter() - started, 1)

    from keras_cdseg.analysis.sparsity import compute_sparsity

    started = time.perf_counter()
    run = load_run(train_dir)
    sparsity = compute_sparsity(predictor.model, test_slices.by_modality(run.config.data))
    timings["analyse_s"] = round(time.perf_counter() - started, 1)

    result = _base_result(variant, seed, root, out_dir) | {
        "status": "finished",
        "config": run.record["run"],
        "split": run.record.get("split"),
        "train": {key: summary.get(key) for key in ("steps_done", "best_step", "best_val_score", "global_batch_size")},
        "history_last": summary.get("last_history_row"),
        "classes": _class_results(report),
        "sparsity": _sparsity_summary(sparsity),
        "timings_s": timings,
    }
    write_json_atomic(root / RESULT_FILE, result)
    return result


def write_runs_json(out_dir, status=None):
    """Collects every runs/seed*/*/result.json into RESULTS_DIR/runs.json; returns its content."""
    out_dir = Path(out_dir)
    results = [read_json(p) for p in sorted(out_dir.glob(f"runs/seed*/*/{RESULT_FILE}"))]
    results = sorted((r for r in results if r), key=lambda r: (r["seed"], _order(r["variant"])))
    previous = read_json(out_dir / RUNS_FILE) or {}
    record = {
        "format": "cdseg-ablation/1",
        "settings": read_json(out_dir / SETTINGS_FILE),
        "status": status or previous.get("status", "running"),
        "runs": results,
    }
    write_json_atomic(out_dir / RUNS_FILE, record)
    return record


def make_figure(out_dir, test_slices, log):
    """Fig. 2 from the lowest seed with both Pre-BN + CAN and Post-BN + CAN finished; writes PNG and JSON."""
    from keras_cdseg.analysis.response_histograms import response_distribution_figure
    from keras_cdseg.inference.predictors import load_predictor
    from keras_cdseg.run_dir import load_run

    out_dir = Path(out_dir)
    seeds = sorted(int(p.name[4:]) for p in (out_dir / "runs").glob("seed*"))
    for seed in seeds:
        roots = {"Pre-BN": run_root(out_dir, seed, REFERENCE), "Post-BN": run_root(out_dir, seed, "post_bn_can")}
        if all((read_json(r / RESULT_FILE) or {}).get("status") == "finished" for r in roots.values()):
            break
    else:
        raise InputError(out_dir, "no seed has both pre_bn_can and post_bn_can finished")
    generators = {label: load_predictor(root / "train").model for label, root in roots.items()}
    slices = test_slices.by_modality(load_run(roots["Pre-BN"] / "train").config.data)
    result = response_distribution_figure(generators, slices, out_dir / FIGURE_FILE, num_kernels=6, seed=0)
    kernels = [
        {"kernel": entry["kernel"], **{label: {k: result["histograms"][label][i][k] for k in ("overlap", "mean", "std")}
                                       for label in generators}}  # fmt: skip
        for i, entry in enumerate(result["histograms"]["Pre-BN"])
    ]
    write_json_atomic(out_dir / FIGURE_JSON, {"seed": seed, "path": FIGURE_FILE, "kernels": kernels,
                                              "histograms": result["histograms"]})  # fmt: skip
    log(f"Fig. 2 (seed {seed}) -> {out_dir / FIGURE_FILE}")


def _figure_record(out_dir):
    record = read_json(Path(out_dir) / FIGURE_JSON)
    if record:
        record = {k: v for k, v in record.items() if k != "histograms"}
    return record


def _claim_out_dir(out_dir, data_root, settings):
    wanted = {"format": "cdseg-ablation/1", "data_dir": str(data_root), "settings": settings.to_dict()}
    existing = read_json(out_dir / SETTINGS_FILE)
    if existing is None:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise InputError(out_dir, "exists, is not empty and holds no ablation; choose another --out")
        write_json_atomic(out_dir / SETTINGS_FILE, wanted)
        return
    for key in ("data_dir", "settings"):
        if existing.get(key) != wanted[key]:
            differing = differences(existing.get(key), wanted[key])
            raise InputError(out_dir / SETTINGS_FILE, f"holds an ablation with other {key} ({differing}); "
                                                      "use the same settings or another --out")  # fmt: skip


def _is_done(root):
    return (read_json(root / RESULT_FILE) or {}).get("status") in DONE


def _base_result(variant, seed, root, out_dir):
    return {
        "seed": seed,
        "variant": variant.key,
        "label": variant.label,
        "tables": list(variant.tables),
        "eval_modality": variant.eval_modality,
        "run_dir": str(root.relative_to(out_dir)),
    }


def _class_results(report):
    """{class: {group: {"num_cases", "scores": {key: mean}, "score_std": {...}, "metrics": {key: mean}}}}."""
    classes = {}
    for class_name, groups in report["summary"].items():
        classes[class_name] = {
            group: {
                "num_cases": values["num_cases"],
                "scores": {key: stats["mean"] for key, stats in values["scores"].items()},
                "metrics": {key: stats["mean"] for key, stats in values["metrics"].items()},
            }
            for group, values in groups.items()
        }
    return classes


def _sparsity_summary(sparsity):
    groups = {**sparsity["per_modality"], "all": sparsity["all"]}
    keys = ("overall", "mean_over_blocks", "per_block", "num_slices")
    return {group: {k: s[k] for k in keys} for group, s in groups.items()}


def _log_result(prefix, result, log):
    if result["status"] == "failed":
        log(f"{prefix}: FAILED ({result['error']})")
        return
    primary = next(iter(result["classes"]))
    nan = float("nan")
    parts = [f"{group} overall {values['scores'].get('overall', nan):.1f} dice {values['metrics'].get('dice', nan):.3f}"
             for group, values in result["classes"][primary].items() if group != "all"]  # fmt: skip
    log(f"{prefix}: {primary} " + "; ".join(parts) + f" ({json.dumps(result['timings_s'])})")


def _order(key):
    keys = list(VARIANTS_BY_KEY)
    return keys.index(key) if key in keys else len(keys)
