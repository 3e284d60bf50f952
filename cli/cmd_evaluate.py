"""`cdseg evaluate`: metrics, scores and reports for existing segmentations."""

from pathlib import Path

import click

from cdseg.errors import CdsegError, user_errors


@click.command()
@click.option("--pred", "pred_dir", type=click.Path(path_type=Path), help="Folder of predicted label maps (NIfTI).")
@click.option("--ref", "ref_dir", type=click.Path(path_type=Path),
              help="Folder of reference label maps with the same file names.")
@click.option(
    "--labels",
    "labels_text",
    default=None,
    help="Classes to evaluate as name=value pairs, e.g. liver=1,spleen=2. "
    "Default: the labels of a dataset.json in REF_DIR or its parent, else liver=1.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Report directory to create (must not exist). Default: <PRED_DIR>_evaluation beside PRED_DIR.")
@click.option("--scoring", type=click.Choice(["chaos", "sliver07"]), default="chaos", show_default=True,
              help="Score mapping (0-100) averaged into the overall score.")
@click.option("--largest-component", "largest_component", default="liver", show_default=True,
              help="Comma-separated classes whose prediction keeps only its largest 3D component.")
@click.option("--no-largest-component", is_flag=True, help="Evaluate predictions as they are.")
@click.option("--no-overlays", is_flag=True, help="Skip the overlay PNGs.")
@click.option("--quiet", is_flag=True, help="No progress line.")
@user_errors
def evaluate(pred_dir, ref_dir, labels_text, out_dir, scoring, largest_component, no_largest_component,
             no_overlays, quiet):
    """Evaluate segmentations: Dice, VO, RVD, ASSD, RMSD, MSSD, HD95, precision, recall and 0-100 scores.

    Predictions and references are NIfTI label maps matched by file name; spacing comes from the
    reference header. Writes report.json, per_case.csv, report.md and overlays/ into the report directory.
    Cases are grouped by modality when a dataset.json (MSD layout) sits in REF_DIR or its parent.
    """
    if pred_dir is None or ref_dir is None:
        raise CdsegError("give both --pred PRED_DIR and --ref REF_DIR")
    _evaluate_files(pred_dir, ref_dir, labels_text, out_dir, scoring,
                    _largest_component_names(largest_component, no_largest_component), not no_overlays, not quiet)


def _largest_component_names(text, disabled):
    if disabled:
        return ()
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _evaluate_files(pred_dir, ref_dir, labels_text, out_dir, scoring, largest_component_classes, overlays, progress):
    from keras_cdseg.errors import InputError
    from keras_cdseg.evaluation import files, run_evaluation

    metadata = files.read_dataset_metadata(ref_dir)
    if labels_text is not None:
        labels = files.parse_labels_option(labels_text)
    elif metadata is not None:
        labels = metadata["labels"]
    else:
        labels = dict(files.DEFAULT_LABELS)
    unknown = [name for name in largest_component_classes if name not in labels]
    # The default ("liver") silently does nothing for label sets without a liver; an explicit typo is an error.
    if unknown and largest_component_classes != ("liver",):
        raise InputError("--largest-component", f"unknown classes {unknown}; classes are {sorted(labels)}")
    pairs = files.match_pairs(pred_dir, ref_dir, metadata)
    files.check_headers(pairs)
    if out_dir is None:
        resolved = Path(pred_dir).resolve()
        out_dir = resolved.parent / f"{resolved.name}_evaluation"
    report = run_evaluation(
        files.iter_case_pairs(pairs, with_images=overlays),
        labels,
        out_dir,
        scoring=scoring,
        largest_component_classes=largest_component_classes,
        overlays=overlays,
        num_cases=len(pairs),
        settings={
            "pred_dir": str(Path(pred_dir).resolve()),
            "ref_dir": str(Path(ref_dir).resolve()),
            "dataset_json": metadata["source"] if metadata else None,
        },
        progress=progress,
    )
    for class_name, groups in report["summary"].items():
        parts = [f"{group} {stats['scores']['overall']['mean']:.2f}" for group, stats in groups.items()
                 if stats["num_cases"]]
        click.echo(f"{class_name}: overall score ({scoring}) " + ", ".join(parts))
    click.echo(f"Report: {out_dir}")
