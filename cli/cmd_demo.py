"""`cdseg demo`: synthetic CT/MR data -> training -> per-modality evaluation -> export -> predict."""

import click

from cdseg.errors import user_errors


@click.command()
@click.option("--out", "out_dir", default="demo_run", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the dataset, run, report, exports and predictions.")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), help="Training steps (default 1600, about 5 minutes on 2 cores).")
@click.option("--quick", is_flag=True, help="Tiny settings (seconds): checks the pipeline, not the accuracy.")
@click.option("--verbose", type=click.IntRange(0, 2), default=None, help="Keras progress: 0, 1 (bar) or 2 (line).")
@user_errors
def demo(out_dir, steps, quick, verbose):
    """Run the whole pipeline on the built-in synthetic CT + MR dataset."""
    import dataclasses

    from keras_cdseg.demo import QUICK, DemoSettings, format_result, run_demo

    settings = QUICK if quick else DemoSettings()
    if steps:
        settings = dataclasses.replace(settings, steps=steps)
    result = run_demo(out_dir, settings, verbose="auto" if verbose is None else verbose)
    click.echo(format_result(result))
    if result["status"] == "interrupted":
        raise SystemExit(130)
