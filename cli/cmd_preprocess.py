"""`cdseg preprocess SRC DST`: import NIfTI pairs, an MSD task or CHAOS into a validated dataset directory."""

import click

from cdseg.errors import user_errors


@click.command()
@click.argument("src", type=click.Path(file_okay=False, path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option(
    "--format", "source_format", type=click.Choice(["nifti-pairs", "msd", "chaos"]), default=None,
    help="Source layout; detected when omitted (dataset.json -> msd, CT/ or MR/ -> chaos, images/ + labels/ -> nifti-pairs).",
)
@click.option(
    "--labels", "label_spec", default=None, metavar="SPEC",
    help="Remap labels: 'liver=5,spleen=1' (name=source value[+value]; names of source labels work too, "
    "e.g. 'liver=liver+cancer'). Output values are 1, 2, ... in this order; unlisted values become background. "
    "Default: keep the source labels (CHAOS: liver only).",
)
@click.option(
    "--sequences", default="ct,t1in,t2spir", show_default=True,
    help="CHAOS scans to import, comma-separated from ct, t1in, t1out, t2spir.",
)
@click.option("--modality", default=None, help="Modality recorded for every nifti-pairs case (e.g. CT, MR); reports only.")
@click.option(
    "--empty-labels", type=click.Choice(["warn", "error", "ignore"]), default="warn", show_default=True,
    help="What a label map without any foreground is.",
)
@click.option("--name", default=None, help="Dataset name in dataset.json (default: DST's folder name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset directory at DST once the new one is complete.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
@user_errors
def preprocess(src, dst, source_format, label_spec, sequences, modality, empty_labels, name, overwrite, quiet):
    """Import SRC into a validated dataset directory DST (MSD layout).

    Every image/label pair is checked (readable 3D NIfTI, finite non-constant image, same shape and affine,
    integer labels declared in dataset.json). If any case fails, all problems are printed per case, nothing is
    written and the exit code is 2. SRC is never modified. DST gets dataset.json and preprocess.json (a
    machine-readable report).
    """
    from keras_cdseg.data.importers import DatasetProblems, import_dataset

    def on_case(case_id, check, problems):
        if problems:
            for problem in problems:
                click.echo(f"FAIL  {case_id}: {problem}", err=True)
        elif not quiet:
            shape = "x".join(str(n) for n in check.shape)
            spacing = "x".join(f"{s:.3g}" for s in check.spacing_mm)
            click.echo(f"ok    {case_id}  {shape} voxels of {spacing} mm")
        if check is not None:
            for warning in check.warnings:
                click.echo(f"WARN  {case_id}: {warning}", err=True)

    try:
        result = import_dataset(
            src, dst, source_format=source_format, label_spec=label_spec, overwrite=overwrite,
            empty_labels=empty_labels, sequences=tuple(s.strip() for s in sequences.split(",") if s.strip()),
            modality=modality, name=name, on_case=on_case,
        )
    except DatasetProblems:
        click.echo(f"Nothing written to {dst}.", err=True)
        raise
    report = result.report
    by_modality = {}
    for case in report["cases"]:
        by_modality[case["modality"] or "unknown"] = by_modality.get(case["modality"] or "unknown", 0) + 1
    click.echo(
        f"Wrote {dst}: {report['num_training']} training, {report['num_test']} test cases "
        f"({', '.join(f'{n} {m}' for m, n in sorted(by_modality.items()))}); format {report['format']}; "
        f"labels {report['labels']}; {report['num_warnings']} warning(s). Report: preprocess.json"
    )
