"""`cdseg train`: iteration-based adversarial training with checkpoints and resume."""

import click

from cdseg.errors import CdsegError, user_errors
from cdseg.options import configured_backend, keras_verbosity, progress_options

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
@click.option("--intensity", type=click.Choice(["percentiles", "ranks", "landmarks"]),
              help="Intensity rule, any modality: percentiles (clip and rescale; default), ranks (each voxel's rank "
                   "in its volume) or landmarks (ranks through a fixed reference curve).")
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
@click.option("--modality", "modalities", multiple=True,
              help="Train on this modality only (dataset metadata); repeat or give CT,MR for several.")
@click.option("--modalities", "modalities_deprecated", hidden=True, help="Deprecated spelling of --modality.")
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "multiworker"]), help="Distribution.")
@click.option("--cpu-replicas", type=click.IntRange(min=0), help="Mirror over N logical CPU devices.")
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="mixed_float16 on GPU (bfloat16 on CPU).")
@click.option("--jit-compile/--no-jit-compile", default=None, help="XLA-compile the train step.")
@click.option("--deterministic/--no-deterministic", default=None,
              help="Bit-identical runs for the same settings and seed (TensorFlow; about 1.6x slower on a CPU).")
@click.option("--quality-calibration/--no-quality-calibration", default=None,
              help="Calibrate the per-scan quality estimate at the end (default on; docs/quality.md).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Prepared-volume cache (default RUN/cache).")
@click.option("--estimate/--no-estimate", default=True, show_default=True,
              help="Time the configured step in a child process first and print the expected duration "
                   "(runs of 1000 steps or more).")
@progress_options
@user_errors
def train(data_dir, out_dir, resume_dir, recipe, config_file, cache_dir, estimate, quiet, verbose, **options):
    """Train a cross-domain segmenter on a dataset directory (made by `cdseg preprocess`).

    \b
    New run:  cdseg train --data abdomen/ --out runs/x [--recipe real-cpu] [--steps N ...]
    Resume:   cdseg train --resume runs/x [--steps N]

    Defaults shown are the paper's (the `paper` recipe); --recipe, then --config, then flags replace them.
    """
    from keras_cdseg.training import cli_config
    from keras_cdseg.run_dir import load_run

    if options.get("norm") == "none":
        options["norm"] = ""  # ModelConfig reads "" as no normalization
    names = [*options.pop("modalities"), options.pop("modalities_deprecated") or ""]
    options["modalities"] = tuple(m.strip() for text in names for m in text.split(",") if m.strip()) or None
    if resume_dir:
        if out_dir or data_dir or config_file or cache_dir or recipe:
            raise CdsegError("--resume takes the run's own settings; do not combine it with --out/--data/--config/--recipe")
        run_config = cli_config.resumed_run_config(load_run(resume_dir).config, **options)
        run_dir, resume = resume_dir, True
    else:
        if not out_dir:
            raise CdsegError("--out RUN_DIR is required for a new run (or --resume RUN_DIR)")
        _check_dataset_folder(data_dir)
        run_config = cli_config.build_run_config(data_dir, config_file, cache_dir, recipe=recipe, **options)
        run_dir, resume = out_dir, False
    from keras_cdseg.training import determinism

    determinism.prepare(run_config.train, configured_backend())  # before anything imports TensorFlow
    _print_expected_duration(run_config, run_dir, resume, estimate)

    from keras_cdseg.training.trainer import train as run_training

    summary = run_training(run_config, run_dir, resume=resume, verbose=keras_verbosity(quiet, verbose))
    if summary["status"] == "interrupted":
        click.echo(f"interrupted at step {summary['steps_done']}; continue with: cdseg train --resume {run_dir}", err=True)
        raise SystemExit(130)


def _check_dataset_folder(data_dir):
    """A folder of scans is not a dataset yet: say which command makes one (before TensorFlow starts)."""
    from pathlib import Path

    if data_dir is None or not Path(data_dir).is_dir() or (Path(data_dir) / "dataset.json").exists():
        return  # no folder, or a missing one: the library's own error names it
    niftis = [p for p in Path(data_dir).rglob("*.nii*") if p.name.endswith((".nii", ".nii.gz"))]
    if niftis:
        dataset = f"{Path(data_dir).name.rstrip('/')}_dataset"
        hint = (f"it holds {len(niftis)} NIfTI file(s); import them into a dataset folder with `cdseg preprocess "
                f"{data_dir} {dataset}` (docs/import.md lists the layouts it reads), then `cdseg train --data {dataset}`")
    else:
        hint = f"make a dataset folder with `cdseg preprocess SRC {data_dir}`"
    raise CdsegError(f"{data_dir}: dataset.json not found; {hint} (docs/quickstart.md)")


def _print_expected_duration(run_config, run_dir, resume, estimate):
    from pathlib import Path

    from keras_cdseg.training.duration import duration_lines, measure_in_child, nvidia_driver_gpus

    steps_done = _steps_done(run_dir) if resume else 0
    step_seconds = None
    if estimate and run_config.train.steps - steps_done >= 1000:
        click.echo("Timing the training step before step 1 (--no-estimate skips this) ...", err=True)
        step_seconds = measure_in_child(run_config, _num_classes(Path(run_config.data_dir)))
    lines = duration_lines(run_config.train.steps, step_seconds, bool(nvidia_driver_gpus()), run_config.recipe,
                           steps_done, data_dir=run_config.data_dir, out_dir=run_dir)  # fmt: skip
    for line in lines:
        click.echo(line, err=True)


def _steps_done(run_dir):
    import json
    from pathlib import Path

    try:
        return int(json.loads((Path(run_dir) / "summary.json").read_text()).get("steps_done", 0))
    except (OSError, ValueError, TypeError):
        return 0


def _num_classes(data_dir):
    import json

    try:
        return max(2, len(json.loads((data_dir / "dataset.json").read_text())["labels"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 2


def _show_paper_defaults(command):
    """Every option with no default of its own shows the paper's value (the config classes' defaults)."""
    import dataclasses

    from keras_cdseg.config import DataConfig, ModelConfig, TrainConfig
    from keras_cdseg.training.cli_config import OPTION_FIELDS

    sections = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig()}
    for param in command.params:
        if isinstance(param, click.Option) and param.show_default is None and param.name in OPTION_FIELDS:
            section, field = OPTION_FIELDS[param.name]
            value = getattr(sections[section], field)
            if dataclasses.is_dataclass(value) or value is None:
                value = "preset's" if section == "model" else "none"
            param.show_default = str({True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value)


_show_paper_defaults(train)
