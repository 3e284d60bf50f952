"""`run_cross_domain`: K-fold cross-validation of one CT + MR network against separate models, resumably.

    RESULTS_DIR/
      cross_domain.json               data, settings and the recipe's effective config; a later call must match
      folds.json                      the K folds (by patient, stratified by modality)
      folds/fold<k>/dataset.json      the fold as a dataset: its training cases, its test cases (original files)
      cache/                          prepared volumes, shared by every run
      runs/fold<k>/<variant>/train/       the run directory of `train()` (config, checkpoints, history)
      runs/fold<k>/<variant>/evaluation/  `evaluate_model` report of the fold's test cases (both modalities)
      runs/fold<k>/<variant>/result.json  config, split, per-case Dice / ASSD / MSSD per organ, timings
      results.json, results.md        aggregates and paired comparisons, rewritten after every finished run

A run is done when its result.json says "finished" (or "failed": non-finite loss, kept as a result). A run
with a checkpoint resumes (`train(..., resume=True)`); a finished training without an evaluation report is
evaluated, a half-written evaluation is redone. With `reevaluate`, a finished run whose evaluation was made
by an older prediction path (its report's `label_restoration` is not today's) is evaluated again, its
training untouched. Every file is written atomically.
"""

import shutil
import sys
import time
from pathlib import Path

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.cross_domain_settings import METHOD, CrossDomainSettings, select_variants
from keras_cdseg.experiments.folds import make_folds, write_fold_dataset
from keras_cdseg.experiments.resumable import clock, differences, read_json, resolved_run_config, train_for_result
from keras_cdseg.io_utils import write_json_atomic

FORMAT = "cdseg-cross-domain/1"
SETTINGS_FILE = "cross_domain.json"
FOLDS_FILE = "folds.json"
RESULT_FILE = "result.json"
DONE = ("finished", "failed")
METRICS = ("dice", "assd_mm", "mssd_mm")


def run_root(out_dir, fold, key):
    return Path(out_dir) / "runs" / f"fold{fold}" / key


def fold_data_dir(out_dir, fold):
    return Path(out_dir) / "folds" / f"fold{fold}"


def run_cross_domain(data_dir, out_dir, settings=CrossDomainSettings(), variants=None, verbose=0, log=None,
                     fold_calibration=True, reevaluate=False, only_folds=None):
    """Runs (or resumes) the benchmark; writes results.json and results.md after every finished run.

    Args:
        data_dir: dataset directory (MSD layout) whose labelled training cases are cross-validated; every
            case needs a "modality" in dataset.json.
        out_dir: RESULTS_DIR. Created; an existing one must hold the same data and settings.
        settings: `CrossDomainSettings`.
        variants: iterable of variant keys or None for the default five (`cross_domain_settings`).
        verbose: Keras `fit` verbosity of each run.
        log: callable(str) for progress lines; defaults to stderr.
        fold_calibration: bool. After each finished method run, measure the quality-calibration samples of its
            model on the fold's test scans (`fold_calibration.fold_samples`: a model trained on every scan is
            calibrated on them later). Not part of any run's budget; on by default.
        reevaluate: bool. Evaluate again the finished runs whose evaluation predates the current prediction
            path (`inference.volume.LABEL_RESTORATION`), keeping their training. Off by default.
        only_folds: iterable of fold numbers (0..K-1) to run now, or None for every fold. As with nnU-Net's
            per-fold training, the others stay planned: the results say "partial" until they are run too.

    Returns:
        The results.json content (`cross_domain_results.build_results`).

    Raises:
        InputError: not a dataset, a case without modality, fewer cases of a modality than folds, a fold
            number outside 0..K-1, an unknown recipe or variant, or a results directory of other data or settings.
    """
    from keras_cdseg.data.dataset import load_dataset

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    chosen = select_variants(variants)
    run_folds = _select_folds(only_folds, settings.num_folds)
    index = load_dataset(data_dir)
    cases = [case for case in index.training if case.label is not None]
    folds = make_folds(cases, settings.num_folds, settings.seed, source=index.root / "dataset.json")
    _claim_out_dir(out_dir, index.root, settings, folds, log)
    for fold in folds:
        write_fold_dataset(index, fold, fold_data_dir(out_dir, fold["fold"]))

    todo = [(fold["fold"], variant) for fold in folds if fold["fold"] in run_folds for variant in chosen]
    # A call with a subset of --variants (e.g. the method's folds first) keeps the plan of earlier calls.
    earlier = (read_json(out_dir / "results.json") or {}).get("planned_variants") or []
    planned = [v.key for v in chosen]
    planned += [key for key in earlier if key not in planned]
    done_before = sum(_is_done(run_root(out_dir, f, v.key)) for f, v in todo)
    scope = f"{len(folds)} folds" if len(run_folds) == len(folds) else f"fold(s) {', '.join(map(str, sorted(run_folds)))}"
    log(f"cross-domain: {scope} x {len(chosen)} variants = {len(todo)} trainings of {settings.steps} steps "
        f"({done_before} already done; recipe {settings.recipe}) -> {out_dir}")  # fmt: skip
    started, run_times, status = time.perf_counter(), [], "finished"
    for number, (fold, variant) in enumerate(todo, 1):
        root = run_root(out_dir, fold, variant.key)
        prefix = f"[{number}/{len(todo)}] fold {fold} {variant.key}"
        if _is_done(root):
            if reevaluate and _evaluation_is_stale(root):
                log(f"{prefix}: done; evaluating again ({_summary_line(reevaluate_run(out_dir, fold, variant.key))})")
                write_results(out_dir, planned, status="running")
            else:
                log(f"{prefix}: done, skipped")
            if fold_calibration:
                _keep_fold_calibration(out_dir, fold, variant.key, log)
            continue
        log(f"{prefix}: {clock(time.perf_counter() - started)} elapsed")
        run_started = time.perf_counter()
        result = run_one(variant, fold, out_dir, settings, verbose=verbose, log=log)
        if result["status"] == "interrupted":
            status = "interrupted"
            log(f"{prefix}: interrupted; run the same command again to resume")
            break
        if fold_calibration:
            _keep_fold_calibration(out_dir, fold, variant.key, log)
        run_times.append(time.perf_counter() - run_started)
        write_results(out_dir, planned, status="running")
        remaining = sum(not _is_done(run_root(out_dir, f, v.key)) for f, v in todo[number:])
        per_run = sum(run_times) / len(run_times)
        log(f"{prefix}: {_summary_line(result)}; {clock(per_run)} per run measured, {remaining} left, "
            f"~{clock(remaining * per_run)} to go")  # fmt: skip
    outstanding = [(f["fold"], key) for f in folds for key in planned if not _is_done(run_root(out_dir, f["fold"], key))]
    if status == "finished" and outstanding:
        status = "partial"
        log(f"cross-domain: {len(outstanding)} run(s) of variants or folds not asked for this time are still to do")
    record = write_results(out_dir, planned, status=status)
    log(f"cross-domain {status} in {clock(time.perf_counter() - started)}: {out_dir / 'results.md'}")
    return record


def _select_folds(only_folds, num_folds):
    """The set of fold numbers to run now; every fold when `only_folds` is None or empty."""
    every = set(range(num_folds))
    if not only_folds:
        return every
    chosen = {int(f) for f in only_folds}
    if wrong := sorted(chosen - every):
        raise InputError("--fold", f"no fold {', '.join(map(str, wrong))} in a {num_folds}-fold split (folds are 0..{num_folds - 1})")
    return chosen


def rebuild_results(out_dir):
    """Rewrites results.json and results.md from the result.json files already in `out_dir`.

    The status is read from the runs, not kept from the last results.json (a benchmark killed mid-run left
    "running" there): "finished" when every planned run of every fold is done, else "partial".
    """
    out_dir = Path(out_dir)
    if read_json(out_dir / SETTINGS_FILE) is None:
        raise InputError(out_dir, f"not a cross-domain results directory (no {SETTINGS_FILE})")
    previous = read_json(out_dir / "results.json") or {}
    planned = previous.get("planned_variants") or sorted({p.name for p in out_dir.glob("runs/fold*/*") if p.is_dir()})
    folds = (read_json(out_dir / FOLDS_FILE) or {}).get("folds") or []
    done = all(_is_done(run_root(out_dir, fold["fold"], key)) for fold in folds for key in planned)
    return write_results(out_dir, planned, status="finished" if done else "partial")


def write_results(out_dir, planned, status=None):
    """Builds results.json from every result.json in `out_dir`, writes it and results.md; returns it."""
    from keras_cdseg.experiments.cross_domain_report import render_results
    from keras_cdseg.experiments.cross_domain_results import build_results
    from keras_cdseg.io_utils import write_text_atomic

    out_dir = Path(out_dir)
    claim = read_json(out_dir / SETTINGS_FILE)
    folds = (read_json(out_dir / FOLDS_FILE) or {}).get("folds", [])
    results = [read_json(p) for p in sorted(out_dir.glob(f"runs/fold*/*/{RESULT_FILE}"))]
    record = build_results(claim, folds, [r for r in results if r], planned, status=status)
    write_json_atomic(out_dir / "results.json", record)
    write_text_atomic(out_dir / "results.md", render_results(record))
    return record


def run_one(variant, fold, out_dir, settings, verbose=0, log=None):
    """Trains (or resumes) and evaluates one (fold, variant) run; writes and returns its result.json content.

    Returns a dict with "status": "finished", "failed" (non-finite loss: `TrainingError`, recorded) or
    "interrupted" (Ctrl-C during training; nothing recorded, resumable).
    """
    from keras_cdseg.inference.predictors import load_predictor
    from keras_cdseg.run_dir import load_run

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    root = run_root(out_dir, fold, variant.key)
    data_dir = fold_data_dir(out_dir, fold)
    train_dir, eval_dir = root / "train", root / "evaluation"
    base = {"fold": fold, "variant": variant.key, "label": variant.label, "run_dir": str(root.relative_to(out_dir))}
    run_config = settings.run_config(variant, data_dir, Path(out_dir) / "cache")
    summary, timings, ended = train_for_result(run_config, root, base, verbose, lambda t: log(f"    {t}"), RESULT_FILE)
    if ended is not None:
        return ended

    started = time.perf_counter()
    report = read_json(eval_dir / "report.json")
    if report is None:
        if eval_dir.exists():
            shutil.rmtree(eval_dir)
        evaluate_fold(load_predictor(train_dir), data_dir, eval_dir, model_path=train_dir)
        report = read_json(eval_dir / "report.json")  # the JSON-safe form (non-finite values spelled out)
    timings["evaluate_s"] = round(time.perf_counter() - started, 1)

    run = load_run(train_dir)
    result = base | {
        "status": "finished",
        "config": run.record["run"],
        "split": run.record.get("split"),
        "train": {key: summary.get(key) for key in ("steps_done", "best_step", "best_val_score", "global_batch_size")},
        **_evaluation_fields(report),
        "timings_s": timings,
    }
    write_json_atomic(root / RESULT_FILE, result)
    return result


def reevaluate_run(out_dir, fold, key):
    """Evaluates a finished run's model again with today's prediction path; rewrites its evaluation and the
    evaluation fields of its result.json (the training record stays). Returns the new result.json content.

    The new report is written beside the old one and swapped in, so an interruption leaves either the old
    evaluation or none (then the run counts as stale and is evaluated again next time).
    """
    from keras_cdseg.inference.predictors import load_predictor

    root = run_root(out_dir, fold, key)
    result = read_json(root / RESULT_FILE)
    eval_dir, fresh, old = root / "evaluation", root / "evaluation.new", root / "evaluation.old"
    for leftover in (fresh, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    started = time.perf_counter()
    evaluate_fold(load_predictor(root / "train"), fold_data_dir(out_dir, fold), fresh, model_path=root / "train")
    if eval_dir.exists():
        eval_dir.rename(old)
    fresh.rename(eval_dir)
    if old.exists():
        shutil.rmtree(old)
    timings = dict(result.get("timings_s") or {}, evaluate_s=round(time.perf_counter() - started, 1))
    result = result | _evaluation_fields(read_json(eval_dir / "report.json")) | {"timings_s": timings}
    write_json_atomic(root / RESULT_FILE, result)
    return result


def _evaluation_fields(report):
    settings = report["settings"]
    return {
        "largest_component_classes": settings.get("largest_component_classes"),
        "label_restoration": settings.get("label_restoration"),
        "cases": case_rows(report),
    }


def _evaluation_is_stale(root):
    """True for a finished run evaluated by an older prediction path (or whose evaluation is missing)."""
    from keras_cdseg.inference.volume import LABEL_RESTORATION

    if (read_json(root / RESULT_FILE) or {}).get("status") != "finished":
        return False
    report = read_json(root / "evaluation" / "report.json") or {}
    return (report.get("settings") or {}).get("label_restoration") != LABEL_RESTORATION


def evaluate_fold(predictor, fold_dir, out_dir, model_path):
    """Evaluates a model on its fold's test cases (both modalities): every organ kept to its largest 3D component.

    `evaluate_model` without its per-case quality estimate: these runs are not calibrated for it and the
    benchmark does not report it, so the probe's extra network outputs would only cost time.
    """
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.evaluation.model_cases import check_model_labels, iter_model_case_pairs, split_cases
    from keras_cdseg.evaluation.report import run_evaluation
    from keras_cdseg.inference.volume import LABEL_RESTORATION

    index = load_dataset(fold_dir)
    cases, _ = split_cases(index, "test")
    organs = {name: value for name, value in index.labels.items() if int(value) != 0}
    check_model_labels(predictor.card, organs)
    pairs = iter_model_case_pairs(predictor, cases, index.labels, with_images=False, quality=False)
    settings = {"mode": "model", "model": str(Path(model_path).resolve()), "data_dir": str(index.root), "split": "test",
                "label_restoration": LABEL_RESTORATION}
    return run_evaluation(pairs, organs, out_dir, largest_component_classes=tuple(organs), overlays=False,
                          num_cases=len(cases), settings=settings, progress=False)  # fmt: skip


def case_rows(report):
    """One row per evaluated case: id, modality and, per organ, Dice, ASSD, MSSD (None where not finite) and flags."""
    rows = []
    for case in report["cases"]:
        organs = {}
        for name, metrics in case["classes"].items():
            organs[name] = {key: metrics.get(key) for key in METRICS}
            organs[name]["flags"] = list(metrics.get("flags", []))
        rows.append({"case_id": case["case_id"], "modality": case.get("modality"), "organs": organs})
    return rows


def _claim_out_dir(out_dir, data_root, settings, folds, log):
    base = settings.base_run_config(data_root, out_dir / "cache").to_dict()
    for key in ("data_dir", "cache_dir"):
        base.pop(key)
    wanted = {"format": FORMAT, "data_dir": str(data_root), "settings": settings.recorded(), "run_config": base}
    # Where the config file's values came from, for the results' command line; its values are compared (in
    # run_config), its path is not: the same file may sit elsewhere in another checkout.
    if settings.config_file:
        wanted["config_file"] = str(settings.config_file)
    existing = read_json(out_dir / SETTINGS_FILE)
    if existing is None:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise InputError(out_dir, "exists, is not empty and holds no cross-domain benchmark; choose another --out")
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / FOLDS_FILE, {"num_folds": len(folds), "seed": settings.seed,
                                                  "rule": "by patient, stratified by modality", "folds": folds})  # fmt: skip
        write_json_atomic(out_dir / SETTINGS_FILE, wanted)
        return
    for key in ("format", "settings", "run_config"):
        if _resolved(existing, key) != wanted[key]:
            raise InputError(out_dir / SETTINGS_FILE, f"holds a benchmark with other {key} "
                             f"({differences(_resolved(existing, key), wanted[key])}); use the same settings or another --out")  # fmt: skip
    recorded = (read_json(out_dir / FOLDS_FILE) or {}).get("folds")
    if recorded != folds:
        raise InputError(out_dir / FOLDS_FILE, "the dataset's training cases changed since these folds were made; "
                                               "use another --out")  # fmt: skip
    if existing.get("data_dir") != wanted["data_dir"]:
        # The same cases (ids, modalities, hence folds) at another path: a dataset prepared again in a new
        # session or on another machine. The fold datasets are rewritten to point at it; runs resume.
        log(f"cross-domain: the dataset moved from {existing.get('data_dir')} to {wanted['data_dir']}; "
            "its cases and folds match, resuming")  # fmt: skip
    paths = {key: wanted[key] for key in ("data_dir", "config_file") if key in wanted}
    if any(existing.get(key) != value for key, value in paths.items()):
        write_json_atomic(out_dir / SETTINGS_FILE, existing | paths)


def _resolved(claim, key):
    """`claim[key]`, a run_config as the config classes read it (`resolved_run_config`)."""
    return resolved_run_config(claim.get(key)) if key == "run_config" else claim.get(key)


def _keep_fold_calibration(out_dir, fold, variant, log):
    """A finished method run's fold calibration samples (kept once); a failure is logged, never fatal."""
    from keras_cdseg.experiments.fold_calibration import FOLD_FILE, fold_samples

    root = run_root(out_dir, fold, variant)
    if variant != METHOD or (root / FOLD_FILE).is_file() or not (root / "train").is_dir():
        return
    if (read_json(root / RESULT_FILE) or {}).get("status") != "finished":
        return
    started = time.perf_counter()
    try:
        fold_samples(out_dir, fold, variant, log=lambda text: log(f"    {text}"))
    except Exception as e:  # noqa: BLE001 - the benchmark's results matter more than the calibration samples
        log(f"    warning: no fold calibration samples for fold {fold} ({type(e).__name__}: {e})")
        return
    log(f"    fold {fold} calibration samples kept ({clock(time.perf_counter() - started)})")


def _is_done(root):
    return (read_json(root / RESULT_FILE) or {}).get("status") in DONE


def _summary_line(result):
    if result["status"] == "failed":
        return f"FAILED ({result['error']})"
    by_modality = {}
    for row in result["cases"]:
        dice = [values["dice"] for values in row["organs"].values() if values["dice"] is not None]
        if dice:
            by_modality.setdefault(row["modality"], []).append(sum(dice) / len(dice))
    parts = [f"{m} mean Dice {sum(v) / len(v):.3f} ({len(v)} cases)" for m, v in sorted(by_modality.items())]
    return "; ".join(parts) + f" ({', '.join(f'{k} {v:.0f} s' for k, v in result['timings_s'].items())})"
