"""`cdseg export`: a trained generator as a TF Serving SavedModel version (+ TFLite) with model.json."""

from pathlib import Path

import click

from cdseg.errors import user_errors
from cdseg.options import verbose_flag


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--name", default="cdseg", show_default=True, help="Model name: the folder under --root.")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Integer version; default: one more than the highest existing. Never overwrites.")
@click.option("--root", type=click.Path(path_type=Path), default=Path("saved_models"), show_default=True,
              help="Export root (TF Serving's --model_base_path is ROOT/NAME).")
@click.option("--tflite", is_flag=True, show_default=True, help="Also write NAME.tflite (float32).")
@click.option("--quantize", type=click.Choice(["float16", "dynamic"]), multiple=True,
              help="Also write NAME_<q>.tflite with float16 weights or dynamic-range int8 (repeatable).")
@verbose_flag
@user_errors
def export(source, name, version, root, tflite, quantize):
    """Export SOURCE (a run directory or a .keras generator) to ROOT/NAME/VERSION/.

    The SavedModel's serving_default signature takes `slices` float32 [N, H, W, 2T+1] (prepared as recorded
    in model.json) and returns `probabilities` float32 [N, H, W, C] and `labels` uint8 [N, H, W].
    """
    from keras_cdseg.deploy.export import export_model
    from keras_cdseg.model_card import read_model_card

    result = export_model(source, root=root, name=name, version=version, tflite=tflite, quantize=quantize)
    card = read_model_card(result.model_json)
    config = card.data_config
    click.echo(f"Exported {result.version_dir} (version {result.version}): serving_default slices "
               f"[N, {config.image_size}, {config.image_size}, {config.num_channels}] -> probabilities, labels "
               f"({', '.join(card.class_names)})")  # fmt: skip
    for variant, path in result.tflite_files.items():
        kind = "float32" if variant == "none" else variant
        click.echo(f"TFLite ({kind}): {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if card.uses_default_preprocessing:
        click.echo(f"Warning: {source} is not inside a run directory; preprocessing was set to the defaults "
                   f"(target spacing {config.target_spacing_mm} mm, percentiles {config.clip_percentiles}) "
                   f"in {result.model_json}; check they match the training.", err=True)  # fmt: skip
