"""`cdseg models`: the models `cdseg predict` can use and the one it would use without --model."""

import json
from pathlib import Path

import click

from cdseg.errors import user_errors


@click.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Also list this model, as `cdseg predict --model` would take it.")
@click.option("--verify", is_flag=True, help="Recompute the bundled model's sha256 of every file (exit 2 if changed).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@user_errors
def models(model_path, verify, as_json):
    """List the available models: --model, $CDSEG_MODEL, versions under ./saved_models/, the bundled model.

    The one marked `*` is what `cdseg predict` uses (first of: --model > CDSEG_MODEL > highest version under
    ./saved_models/ > the bundled model). Needs no TensorFlow.
    """
    from keras_cdseg.errors import InputError
    from keras_cdseg.model_resolution import available_models
    from keras_cdseg.pretrained import bundled_model, verify_bundle

    listing = available_models(model_path)
    bundle = bundled_model()
    if verify and bundle is not None:
        changed = verify_bundle(bundle)
        listing["bundle_verified"] = not changed
        if changed:
            raise InputError(bundle.path, f"bundled model differs from bundle.json: {', '.join(changed)}")
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    if not listing["models"]:
        click.echo("No model available.")
    for entry in listing["models"]:
        mark = "*" if entry["used"] else " "
        click.echo(f"{mark} {entry['source']:<12} {entry['path']}  ({entry['detail']})")
    if verify and bundle is not None:
        click.echo(f"Bundled model verified: every file matches sha256 {bundle.sha256}")
    if listing["error"]:
        click.echo(f"Warning: cdseg predict without --model would fail: {listing['error']}", err=True)
