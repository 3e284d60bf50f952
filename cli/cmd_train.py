"""`cdseg train`: iteration-based adversarial training with checkpoints and resume."""

import click

from cdseg.errors import CdsegError, user_errors

_DEFAULTS = "Default from the config file, else the paper's"


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Dataset directory (dataset.json).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="New run directory.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this directory.")
@click.option("--recipe", type=click.Choice(["paper", "real-cpu"]), default=None,
              help="Named settings (keras_cdseg/recipes.py): 'paper' (the defaults, for GPUs) or 'real-cpu' "
              "(real CT + MR in about an hour on 2 CPU cores). --config and flags override it.")  # fmt: skip
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="JSON/YAML config; flags override it.")
@click.option("--steps", type=click.IntRange(min=1), help="Total training steps (paper: 100000).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Slices per replica per step (paper: 6).")
@click.option("--image-size", type=click.IntRange(min=8), help="In-plane size after resampling (default 256).")
@click.option("--target-spacing", type=click.FloatRange(min=0, min_open=True), help="In-plane mm (default 1.5).")
@click.option("--context", type=click.IntRange(0, 8), help="T neighbouring slices per side; 2T+1 channels (default 1).")
@click.option("--preset", type=click.Choice(["paper", "unet"]), help="Generator layout (default paper).")
@click.option("--base-filters", type=click.IntRange(min=1), help="Filters of the first level (preset's default).")
@click.option("--depth", type=click.IntRange(min=1), help="Down-sampling levels (preset's default).")
@click.option("--norm", type=click.Choice(["batch", "instance", "none"]), help="Normalization (default batch).")
@click.option("--norm-order", type=click.Choice(["pre", "post"]), help="pre: norm→conv→PReLU (paper); post: conv→norm→PReLU.")
@click.option("--architecture", type=click.Choice(["dcn", "attention", "conditional"]),
              help="dcn (paper), attention (Att-DCN) or conditional (Cond-DCN, sees modality labels in training).")  # fmt: skip
@click.option("--modality-weight", type=click.FloatRange(min=0, min_open=True), help="Cond-DCN modality loss weight (1).")
@click.option("--adversarial-weight", type=click.FloatRange(min=0), help="CAN weight; 0 = w/o CAN (default 0.001).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), help="Generator Adam lr (1e-3).")
@click.option("--d-learning-rate", type=click.FloatRange(min=0, min_open=True), help="Discriminator Adam lr (1e-3).")
@click.option("--seed", type=int, help="Fixes weights, split, data order, augmentation (default 0).")
@click.option("--augment/--no-augment", default=None, help="Rotation/scale/intensity jitter (default on).")
@click.option("--loss", type=click.Choice(["ce", "ce_dice"]), help="Segmentation loss: ce (paper) or ce_dice (nnU-Net's).")
@click.option("--lr-schedule", type=click.Choice(["constant", "poly", "cosine"]), help="Learning-rate schedule (constant).")
@click.option("--sampling", type=click.Choice(["slices", "organs"]), help="Slice sampling: slices (default) or organ-balanced.")
@click.option("--augmentation", type=click.Choice(["standard", "real"]), help="Augmentation preset (standard).")
@click.option("--foreground-weight", type=click.FloatRange(min=0, min_open=True), help="Sampling weight of foreground slices.")
@click.option("--val-every", type=click.IntRange(min=1), help="Steps between validations (default 1000).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), help="Held-out share per modality (0.2).")
@click.option("--val-max-cases", type=click.IntRange(min=1), help="Validation volumes per modality (default 4).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), help="Steps between checkpoints (default 1000).")
@click.option("--keep-checkpoints", type=click.IntRange(min=1), help="Checkpoints kept (default 3).")
@click.option("--modalities", help="Train on these modalities only, e.g. CT or CT,MR (dataset metadata).")
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "multiworker"]), help="Distribution.")
@click.option("--cpu-replicas", type=click.IntRange(min=0), help="Mirror over N logical CPU devices.")
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="mixed_float16 on GPU (bfloat16 on CPU).")
@click.option("--jit-compile/--no-jit-compile", default=None, help="XLA-compile the train step.")
@click.option("--quality-calibration/--no-quality-calibration", default=None,
              help="Calibrate the per-scan quality estimate at the end (default on; docs/quality.md).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Prepared-volume cache (default RUN/cache).")
@click.option("--verbose", type=click.IntRange(0, 2), default=None, help="Keras progress: 0 silent, 1 bar, 2 line/epoch.")
@user_errors
def train(data_dir, out_dir, resume_dir, recipe, config_file, cache_dir, verbose, **options):
    """Train a cross-domain segmenter on a dataset directory.

    \b
    New run:  cdseg train --data liver/ --out runs/x [--steps 100000 ...]
    Resume:   cdseg train --resume runs/x [--steps N]
    """
    from keras_cdseg.training import cli_config
    from keras_cdseg.run_dir import load_run

    if options.get("norm") == "none":
        options["norm"] = ""  # ModelConfig reads "" as no normalization
    if options.get("modalities") is not None:
        options["modalities"] = tuple(m.strip() for m in options["modalities"].split(",") if m.strip())
    if resume_dir:
        if out_dir or data_dir or config_file or cache_dir or recipe:
            raise CdsegError("--resume takes the run's own settings; do not combine it with --out/--data/--config/--recipe")
        run_config = cli_config.resumed_run_config(load_run(resume_dir).config, **options)
        run_dir, resume = resume_dir, True
    else:
        if not out_dir:
            raise CdsegError("--out RUN_DIR is required for a new run (or --resume RUN_DIR)")
        run_config = cli_config.build_run_config(data_dir, config_file, cache_dir, recipe=recipe, **options)
        run_dir, resume = out_dir, False

    from keras_cdseg.training.trainer import train as run_training

    summary = run_training(run_config, run_dir, resume=resume, verbose="auto" if verbose is None else verbose)
    if summary["status"] == "interrupted":
        click.echo(f"interrupted at step {summary['steps_done']}; continue with: cdseg train --resume {run_dir}", err=True)
        raise SystemExit(130)
