"""`cdseg preprocess SRC [SRC ...] DST`: import NIfTI pairs, MSD tasks or CHAOS into one validated dataset directory."""

import click

from cdseg.errors import user_errors


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="SRC [SRC ...] DST", type=click.Path(path_type=str))
@click.option(
    "--format", "formats", multiple=True, type=click.Choice(["nifti-pairs", "msd", "chaos"]), show_default="detected",
    help="Source layout, once for every SRC or once per SRC in order; detected when omitted (dataset.json -> msd, "
    "CT/ or MR/ -> chaos, images/ + labels/ or img/ + label/ -> nifti-pairs).",
)
@click.option(
    "--labels", "label_specs", multiple=True, metavar="SPEC", show_default="source labels; CHAOS: liver",
    help="Remap labels, once for every SRC or once per SRC in order: 'liver=5,spleen=1' (name=source value[+value]; "
    "names of source labels work too, e.g. 'liver=liver+cancer'). Output values are 1, 2, ... in this order; unlisted "
    "values become background. Every source must end up with the same label names.",
)
@click.option(
    "--sequences", default="ct,t1in,t2spir", show_default=True,
    help="CHAOS scans to import, comma-separated from ct, t1in, t1out, t2spir (every CHAOS source).",
)
@click.option(
    "--modality", "modalities", multiple=True, show_default="none for nifti-pairs; MSD, CHAOS: their own",
    help="Modality recorded for the cases (e.g. CT, MR; reports only), once for every SRC or once per SRC in order. "
    "Must agree with what an MSD or CHAOS source records.",
)
@click.option(
    "--empty-labels", type=click.Choice(["warn", "error", "ignore"]), default="warn", show_default=True,
    help="What a label map without any foreground is.",
)
@click.option("--name", default=None, show_default="DST's folder name", help="Dataset name in dataset.json.")
@click.option("--overwrite", is_flag=True, show_default=True, help="Replace an existing dataset directory at DST once the new one is complete.")
@click.option("-q", "--quiet", is_flag=True, show_default=True, help="Print only the summary and errors.")
@click.option("-v", "--verbose", is_flag=True, show_default=True, help="Also print each source's settings and each case's voxels per label.")
@user_errors
def preprocess(paths, formats, label_specs, sequences, modalities, empty_labels, name, overwrite, quiet, verbose):
    """Import one or several SRC folders into a validated dataset directory DST (MSD layout).

    Several sources (e.g. CT and MR from different archives) become one dataset; case ids must be unique across
    them. Every image/label pair is checked (readable 3D NIfTI, finite non-constant image, same shape and affine,
    integer labels declared in dataset.json). If any case fails, all problems of all sources are printed per
    case, nothing is written and the exit code is 2. Sources are never modified. DST gets dataset.json and
    preprocess.json (a machine-readable report, with the source of every case).

    \b
    Example (CT and MR from two archives, one label set):
      cdseg preprocess ct/ mr/ abdomen/ --modality CT --modality MR \\
          --labels liver=1,right_kidney=2,left_kidney=3,spleen=4
    """
    from keras_cdseg.data.importing import DatasetProblems, import_sources, sources_from_options
    from keras_cdseg.errors import InputError

    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other")
    if len(paths) < 2:
        raise InputError("SRC [SRC ...] DST", f"need at least one source folder and the destination, got {len(paths)} path(s)")
    *srcs, dst = paths
    sources = sources_from_options(
        srcs, formats, modalities, label_specs, tuple(s.strip() for s in sequences.split(",") if s.strip())
    )

    def on_case(case_id, check, problems):
        for problem in problems:
            click.echo(f"FAIL  {case_id}: {problem}", err=True)
        if check is None:
            return
        if not problems and not quiet:
            shape = "x".join(str(n) for n in check.shape)
            spacing = "x".join(f"{s:.3g}" for s in check.spacing_mm)
            click.echo(f"ok    {case_id}  {shape} voxels of {spacing} mm")
        if verbose:
            click.echo(f"      voxels per label value {check.label_voxels}")
        for warning in check.warnings if not quiet else ():
            click.echo(f"WARN  {case_id}: {warning}", err=True)

    if verbose:
        for source in sources:
            click.echo(
                f"source {source.path}: format {source.source_format or 'detected'}, modality {source.modality or 'from the source'}, "
                f"labels {source.label_spec or 'as in the source'}"
            )

    try:
        result = import_sources(sources, dst, overwrite=overwrite, empty_labels=empty_labels, name=name, on_case=on_case)
    except DatasetProblems:
        click.echo(f"Nothing written to {dst}.", err=True)
        raise
    report = result.report
    by_modality = {}
    for case in report["cases"]:
        by_modality[case["modality"] or "unknown"] = by_modality.get(case["modality"] or "unknown", 0) + 1
    formats_used = " + ".join(source["format"] for source in report["sources"])
    click.echo(
        f"Wrote {dst}: {report['num_training']} training, {report['num_test']} test cases "
        f"({', '.join(f'{n} {m}' for m, n in sorted(by_modality.items()))}); format {formats_used}; "
        f"labels {report['labels']}; {report['num_warnings']} warning(s). Report: preprocess.json"
    )
