"""`cdseg predict`: segment scans (NIfTI files or folders, DICOM series folders) on their exact grids."""

from pathlib import Path

import click

from cdseg.errors import user_errors


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("predictions"),
              show_default=True, help="Output folder (created if missing).")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Run directory, .keras file, exported version directory, saved_models/<name> or .tflite. "
                   "Default: the highest version under ./saved_models/*/ (TF Serving's rule).")
@click.option("--probabilities", is_flag=True,
              help="Also write <case>_probabilities.nii.gz (uint8 [X, Y, Z, C], scale 1/255).")
@click.option("--no-postprocess", is_flag=True, help="Keep every predicted island (no largest-component step).")
@click.option("--preview", is_flag=True, help="Also write <case>_preview.png (three planes with contours).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs of the same cases.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Slices per network call.")
@user_errors
def predict(inputs, out_dir, model_path, probabilities, no_postprocess, preview, overwrite, batch_size):
    """Segment scans; write uint8 label maps on their exact grids and statistics.json.

    INPUT: NIfTI files, folders of NIfTI files, or DICOM series folders. Writes OUT/<case>.nii.gz and
    OUT/statistics.json (organ volumes in mL, voxel counts, mean intensities, seconds). Each output has exactly the input's grid: same shape, affine and qform/sform codes, whatever the
    orientation and spacing. Preprocessing comes from the model's own configuration (model.json or the
    run's config.json). If any input is bad, nothing is written.
    """
    from keras_cdseg.deploy.inputs import discover_inputs
    from keras_cdseg.deploy.predict import predict_cases
    from keras_cdseg.inference.predictors import default_model_path, load_predictor

    discover_inputs(inputs)  # bad inputs fail before the model is loaded
    if model_path is None:
        model_path = default_model_path(Path("saved_models"))
        click.echo(f"Model: {model_path} (highest version under saved_models/)")
    predictor = load_predictor(model_path)
    if predictor.card.uses_default_preprocessing:
        click.echo(f"Warning: {model_path} has no run config beside it; using default preprocessing.", err=True)

    def report(stats):
        organs = ", ".join(f"{name} {c['volume_ml']:.1f} mL" for name, c in stats["classes"].items())
        click.echo(f"{stats['case_id']}: {organs or 'no classes'} ({stats['seconds']['total']:.1f} s)")

    results = predict_cases(inputs, out_dir, predictor, postprocess=not no_postprocess, probabilities=probabilities,
                            preview=preview, overwrite=overwrite, batch_size=batch_size, on_case=report)  # fmt: skip
    click.echo(f"Wrote {len(results)} case(s) to {out_dir}")
