"""`cdseg demo`: synthetic CT/MR data -> training -> per-modality evaluation -> export -> predict."""

import click

from cdseg.errors import user_errors
from cdseg.options import keras_verbosity, progress_options


@click.command()
@click.option("--out", "out_dir", default="demo_run", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the dataset, run, report, exports and predictions.")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), show_default="1600; --quick: 4",
              help="Training steps (1600 took about 11 minutes on 2 CPU cores, the README's measurement).")
@click.option("--quick", is_flag=True, help="Tiny settings (seconds): checks the pipeline, not the accuracy.")
@progress_options
@user_errors
def demo(out_dir, steps, quick, quiet, verbose):
    """Run the whole pipeline on the built-in synthetic CT + MR dataset."""
    import dataclasses

    from keras_cdseg.demo import QUICK, DemoSettings, format_result, run_demo

    settings = QUICK if quick else DemoSettings()
    if steps:
        settings = dataclasses.replace(settings, steps=steps)
    result = run_demo(out_dir, settings, verbose=keras_verbosity(quiet, verbose))
    click.echo(format_result(result))
    if result["status"] == "interrupted":
        raise SystemExit(130)
