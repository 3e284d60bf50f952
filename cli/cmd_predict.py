"""`cdseg predict`: segment scans (NIfTI files or folders, DICOM series folders) on their exact grids."""

from pathlib import Path

import click

from cdseg import native_logs
from cdseg.errors import user_errors


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-i", "--input", "input_options", multiple=True, type=click.Path(path_type=Path),
              help="An input, as TotalSegmentator and nnU-Net spell it (repeatable; the same as a positional INPUT).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("predictions"),
              show_default=True,
              help="Output folder (created if missing), or for one input the output file itself when it ends "
                   "in .nii.gz or .nii (statistics in <name>.json beside it).")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Run directory, .keras file, exported version directory, saved_models/<name> or .tflite. "
                   "Default: $CDSEG_MODEL, else the highest version under ./saved_models/*/ (TF Serving's "
                   "rule), else the model bundled with keras_cdseg (`cdseg models` lists them).")
@click.option("--probabilities", is_flag=True,
              help="Also write <case>_probabilities.nii.gz (uint8 [X, Y, Z, C], scale 1/255).")
@click.option("--postprocess/--no-postprocess", default=True, show_default=True,
              help="Keep the largest 3D component of the model's post-processed organs (the liver); "
                   "--no-postprocess keeps every predicted island.")
@click.option("--preview", is_flag=True, help="Also write <case>_preview.png (three planes with contours).")
@click.option("--dicom-seg", is_flag=True,
              help="Also write OUT/<case>.seg.dcm, a binary DICOM Segmentation referencing the source series "
                   "(DICOM series inputs only).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs of the same cases.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Slices per network call.")
@click.option("--no-quality", is_flag=True, help="Skip the per-scan quality estimate (docs/quality.md).")
@click.option("--quality-perturbations", is_flag=True,
              help="Also measure agreement under small input perturbations (3 extra network passes per scan).")
@click.option("--fail-on", type=click.Choice(["review", "fail"]), default=None, show_default="never",
              help="Exit with code 3 (after writing every output) when any case's quality verdict is this level "
                   "or worse (ok < review < fail).")
@click.option("--fail-on-flag", is_flag=True,
              help="Deprecated (removed in the next release): the same as --fail-on fail.")
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
@click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, param, value: value and native_logs.show_all(),
              help="Also show TensorFlow's own log lines.")
@user_errors
def predict(inputs, input_options, out_dir, model_path, probabilities, postprocess, preview, dicom_seg, overwrite,
            batch_size, no_quality, quality_perturbations, fail_on, fail_on_flag, quiet):
    """Segment scans; write uint8 label maps on their exact grids and statistics.json.

    INPUT (or -i INPUT): NIfTI files, folders of NIfTI files, or DICOM series folders; a folder's other
    files, subfolders and label maps are skipped with a reason. Writes OUT/<case>.nii.gz and
    OUT/statistics.json (organ volumes in mL, voxel counts, mean intensities, seconds, and a `quality`
    estimate per case: a verdict ok / review / fail, estimated Dice, failure probability, signals; exit code 3
    with --fail-on review|fail when a case's verdict reaches that level); with one input and
    `-o seg.nii.gz`, writes exactly seg.nii.gz and seg.json. Each output has exactly the input's grid: same shape, affine and qform/sform codes, whatever the
    orientation and spacing. Preprocessing comes from the model's own configuration (model.json or the
    run's config.json). If any input is bad, nothing is written.
    """
    from keras_cdseg.deploy.inputs import check_dicom_seg_inputs, list_inputs
    from keras_cdseg.deploy.outputs import check_outputs_free, is_file_output

    # Every refusal that needs no model comes before TensorFlow starts (in well under a second).
    inputs = (*inputs, *input_options)
    cases, skipped = list_inputs(inputs)
    check_outputs_free(cases, out_dir, probabilities, preview, dicom_seg, overwrite)
    if dicom_seg:
        check_dicom_seg_inputs(cases)
    if not quiet:
        for item in skipped:
            click.echo(f"Skipped {item.path}: {item.reason}", err=True)

    from keras_cdseg.deploy.predict import predict_cases
    from keras_cdseg.inference.predictors import load_predictor
    from keras_cdseg.model_resolution import resolve_model

    choice = resolve_model(model_path)
    model_path = choice.path
    with native_logs.quiet_native_logs():
        predictor = load_predictor(model_path)
    if not quiet:
        click.echo(f"Model: {choice.describe()}")
    if predictor.card.uses_default_preprocessing:
        click.echo(f"Warning: {model_path} has no run config beside it; using default preprocessing.", err=True)

    def report(stats):
        from keras_cdseg.inference.quality.triage import format_case_line

        click.echo(format_case_line(stats))

    results = predict_cases(inputs, out_dir, predictor, postprocess=postprocess, probabilities=probabilities,
                            preview=preview, overwrite=overwrite, batch_size=batch_size, on_case=None if quiet else report,
                            dicom_seg=dicom_seg, quality=not no_quality,
                            quality_perturbations=quality_perturbations, model_choice=choice)  # fmt: skip
    if quiet:
        pass
    elif is_file_output(out_dir):
        click.echo(f"Wrote {out_dir}")
    else:
        click.echo(f"Wrote {len(results)} case(s) to {out_dir}")
    level = fail_on or ("fail" if fail_on_flag else None)
    if level is not None:
        from keras_cdseg.inference.quality.triage import verdict_at_least

        hit = [s["case_id"] for s in results if verdict_at_least((s.get("quality") or {}).get("verdict") or "ok", level)]
        if hit:
            click.echo(f"Error: {len(hit)} case(s) with a quality verdict of {level} or worse: {', '.join(hit)}",
                       err=True)  # fmt: skip
            raise SystemExit(3)
