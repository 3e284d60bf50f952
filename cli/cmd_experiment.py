"""`cdseg experiment`: the paper's ablation, the failure-detection and the cross-domain benchmarks (resumable)."""

import click

from cdseg.errors import user_errors

_DEFAULTS = "see keras_cdseg.experiments.variants.AblationSettings"


@click.group()
def experiment():
    """Reproduce the paper's experiments (resumable, one directory of results)."""


@experiment.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="Dataset directory (MSD layout); its test split evaluates every run (not needed with --report-only).")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="RESULTS_DIR: runs, runs.json, report.md, Fig. 2. Run the command again to resume.")  # fmt: skip
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Seeds 0..N-1; each seed trains every variant (weights, train/val split, data order).")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), help="Training steps per run [default: 600].")
@click.option("--size", "image_size", type=click.IntRange(min=8), help="Input size in pixels [default: 64].")
@click.option("--spacing", "target_spacing_mm", type=click.FloatRange(min=0, min_open=True),
              help="In-plane spacing in mm [default: 6].")  # fmt: skip
@click.option("--preset", type=click.Choice(["unet", "paper"]), help="Generator layout [default: unet].")
@click.option("--base-filters", type=click.IntRange(min=1), help="Filters of the first U-Net level [default: 16].")
@click.option("--depth", type=click.IntRange(min=1), help="Down-sampling levels [default: 3].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Slices per step [default: 8].")
@click.option("--tables", default="2,3,4,5", show_default=True, help="Tables whose variants to run (2, 3, 4, 5).")
@click.option("--only", default=None, help="Comma-separated variant keys to run (the reference pre_bn_can is added).")
@click.option("--report-only", is_flag=True, help="Only rebuild runs.json and report.md from finished runs.")
@click.option("--verbose", type=click.IntRange(0, 2), default=0, show_default=True, help="Keras progress per run.")
@user_errors
def ablation(data_dir, out_dir, seeds, steps, image_size, target_spacing_mm, preset, base_filters, depth, batch_size,
             tables, only, report_only, verbose):  # fmt: skip
    """Train and evaluate the paper's variants per seed; write RESULTS_DIR/report.md.

    Table 2: Post-BN w/o CAN, Pre-BN w/o CAN, Post-BN + CAN, Pre-IN + CAN, Pre-BN + CAN, Att-DCN, Cond-DCN.
    Table 3: sparsity of each Table 2 variant per modality. Table 4: CT-only and MR-only models vs the
    cross-domain Pre-BN + CAN. Table 5: context T = 0..3 for BN and IN. Fig. 2: pre- vs post-norm
    kernel response histograms on CT and MR. Each table: mean ± std over seeds and the paired
    difference to Pre-BN + CAN with a 95 % t-interval.
    """
    import json

    from keras_cdseg.errors import InputError
    from keras_cdseg.experiments.runner import rebuild_report, run_ablation
    from keras_cdseg.experiments.variants import AblationSettings

    try:
        table_numbers = [int(t) for t in tables.split(",") if t.strip()]
    except ValueError:
        raise InputError("--tables", f"expected comma-separated table numbers, got {tables!r}") from None
    keys = [k.strip() for k in only.split(",") if k.strip()] if only else None
    if report_only:
        record = rebuild_report(out_dir)
    else:
        if not data_dir:
            raise InputError("--data", "required (the dataset directory)")
        given = {"steps": steps, "image_size": image_size, "target_spacing_mm": target_spacing_mm,
                 "preset": preset, "base_filters": base_filters, "depth": depth, "batch_size": batch_size}  # fmt: skip
        settings = AblationSettings(**{k: v for k, v in given.items() if v is not None})
        record = run_ablation(data_dir, out_dir, settings, seeds=range(seeds), tables=table_numbers, only=keys,
                              verbose=verbose)  # fmt: skip
    counts = {}
    for run in record["runs"]:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    click.echo(json.dumps({"status": record["status"], "runs": counts, "report": f"{out_dir}/report.md"}))
    if record["status"] == "interrupted":
        raise SystemExit(130)


@experiment.command("failure-detection")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="RESULTS_DIR: data, runs, cases.json, failure_detection.json, risk_coverage.png (re-run resumes).")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), help="Training steps per model [default: 1200].")
@click.option("--quick", is_flag=True, help="Tiny settings that only check the pipeline (seconds, meaningless numbers).")
@click.option("--verbose", type=click.IntRange(0, 2), default=0, show_default=True, help="Keras progress per run.")
@user_errors
def failure_detection(out_dir, steps, quick, verbose):
    """Benchmark the per-scan quality estimate (docs/quality.md).

    Trains a CT + MR model and CT-only / MR-only models on synthetic phantoms (each calibrated at the end of
    training), then scores in-distribution, leave-one-modality-out, held-out-degradation and real-CT cases:
    AUROC for failure (Dice < 0.5), AURC, Spearman and MAE of the estimated Dice, per signal and combined.
    """
    import dataclasses
    import json

    from keras_cdseg.experiments.failure_detection import QUICK, FailureSettings, run_failure_detection

    settings = QUICK if quick else FailureSettings()
    if steps:
        settings = dataclasses.replace(settings, steps=steps)
    result = run_failure_detection(out_dir, settings, verbose=verbose)
    click.echo(json.dumps({"num_cases": result["num_cases"], "num_failures": result["num_failures"],
                           "combined": result["metrics"]["combined"], "report": f"{out_dir}/failure_detection.json"}))  # fmt: skip


@experiment.command("cross-domain")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="Dataset directory (MSD layout, a 'modality' per case); its labelled training cases are "
                   "cross-validated (not needed with --report-only).")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="RESULTS_DIR: folds, runs, results.json, results.md. Run the command again to resume.")  # fmt: skip
@click.option("--folds", "num_folds", type=click.IntRange(min=2), default=4, show_default=True,
              help="K of the K-fold split (by patient, stratified by modality).")  # fmt: skip
@click.option("--recipe", default="real-cpu", show_default=True, help="Training recipe every run starts from.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON/YAML run config whose data/model/train values override the recipe's.")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), default=1800, show_default=True,
              help="Training steps of every run (the same budget for every variant).")  # fmt: skip
@click.option("--fold", "only_folds", type=int, multiple=True,
              help="Run only this fold (0..K-1; repeat for several), e.g. one fold per machine or session; "
                   "the others stay planned [default: every fold].")  # fmt: skip
@click.option("--variants", default=None,
              help="Comma-separated variants [default: method,no_adversarial,post_norm,ct_only,mr_only; "
                   "cond_dcn on request; method is always run].")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Folds, training seed, bootstrap resampling.")
@click.option("--train-seed", type=int, default=None,
              help="Training seed of every run, apart from the folds [default: --seed]: a repeat on the same folds "
                   "(compare repeats with `cdseg experiment seeds`).")  # fmt: skip
@click.option("--quality-calibration", is_flag=True,
              help="Calibrate each run's per-scan quality estimate at the end of training (off: unused here).")  # fmt: skip
@click.option("--fold-calibration/--no-fold-calibration", default=True, show_default=True,
              help="After each method run, keep its quality-calibration samples on the fold's test scans "
                   "(fold_calibration.json; scripts/calibrate_from_folds.py pools them).")  # fmt: skip
@click.option("--reevaluate", is_flag=True,
              help="Evaluate again the finished runs whose evaluation an older prediction path made (training kept).")
@click.option("--report-only", is_flag=True, help="Only rebuild results.json and results.md from finished runs.")
@click.option("--verbose", type=click.IntRange(0, 2), default=0, show_default=True, help="Keras progress per run.")
@user_errors
def cross_domain(data_dir, out_dir, num_folds, recipe, config_file, steps, only_folds, variants, seed, train_seed,
                 quality_calibration, fold_calibration, reevaluate, report_only, verbose):  # fmt: skip
    """Cross-validate one CT + MR network against separate per-modality models; write RESULTS_DIR/results.md.

    Variants: method (pre-norm BN + CAN), no_adversarial, post_norm, ct_only and mr_only (separate models,
    each also tested zero-shot on the other modality), cond_dcn. Per modality and organ: Dice, ASSD and
    MSSD with bootstrap 95 % intervals over cases, and paired comparisons of the method with every other model.
    """
    import json

    from keras_cdseg.errors import InputError
    from keras_cdseg.experiments.cross_domain import rebuild_results, run_cross_domain
    from keras_cdseg.experiments.cross_domain_settings import CrossDomainSettings

    if report_only:
        record = rebuild_results(out_dir)
    else:
        if not data_dir:
            raise InputError("--data", "required (the dataset directory)")
        settings = CrossDomainSettings(recipe=recipe, steps=steps, num_folds=num_folds, seed=seed,
                                       train_seed=train_seed, quality_calibration=quality_calibration, config_file=config_file)  # fmt: skip
        keys = [k.strip() for k in variants.split(",") if k.strip()] if variants else None
        record = run_cross_domain(data_dir, out_dir, settings, variants=keys, verbose=verbose,
                                  fold_calibration=fold_calibration, reevaluate=reevaluate, only_folds=only_folds)
    progress = record["progress"]
    click.echo(json.dumps({"status": record["status"], "finished": progress["num_finished"],
                           "planned": progress["num_planned"], "failed": progress["num_failed"],
                           "results": f"{out_dir}/results.md"}))  # fmt: skip
    if record["status"] == "interrupted":
        raise SystemExit(130)


@experiment.command()
@click.argument("result_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Where seed_repeats.json and seed_repeats.md go.")  # fmt: skip
@user_errors
def seeds(result_dirs, out_dir):
    """Compare training-seed repeats of the cross-domain benchmark (RESULTS_DIR RESULTS_DIR ...).

    The first RESULTS_DIR is the reference; the others repeat it with another --train-seed (same folds and
    settings). Per model, modality and organ: each repeat's Dice, a repeat minus the first paired by case (what
    retraining alone changes), the mean over repeats, and the method averaged over its repeats minus each
    model of the first directory. Writes OUT/seed_repeats.json and OUT/seed_repeats.md.
    """
    import json

    from keras_cdseg.experiments.seed_repeats import MARKDOWN_FILE, write_seed_repeats

    record = write_seed_repeats(result_dirs, out_dir)
    click.echo(json.dumps({"repeats": [r["train_seed"] for r in record["repeats"]], "variants": list(record["variants"]),
                           "report": f"{out_dir}/{MARKDOWN_FILE}"}))  # fmt: skip
