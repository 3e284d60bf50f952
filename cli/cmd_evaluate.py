"""`cdseg evaluate`: metrics, scores and reports for existing segmentations or for a model on a dataset."""

from pathlib import Path

import click

from cdseg import native_logs
from cdseg.errors import CdsegError, user_errors


@click.command()
@click.option("--pred", "pred_dir", type=click.Path(path_type=Path),
              help="Predicted label map (NIfTI file) or a folder of them.")
@click.option("--ref", "ref_dir", type=click.Path(path_type=Path),
              help="Reference label map or a folder of them, matched by file name (scans in the folder are set "
                   "aside; <case>_organs.nii.gz beside the scan <case>.nii.gz belongs to <case>).")
@click.option(
    "--labels",
    "labels_text",
    default=None,
    show_default="a dataset.json beside --ref, else liver=1",
    help="Classes to evaluate as name=value pairs (liver=1,spleen=2), or name=pred:ref where the reference "
    "uses another value (liver=1:5).",
)
@click.option("--ref-labels", "ref_labels_text", default=None, show_default="the --labels values",
              help="The reference's values of classes of --labels, as name=value pairs (e.g. liver=5 for "
                   "TotalSegmentator).")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Model to evaluate (run directory, .keras, exported version directory, .tflite); needs --data.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Dataset directory (MSD layout with dataset.json) whose --split is predicted and evaluated.")
@click.option("--split", type=click.Choice(["test", "training", "all"]), default="test", show_default=True,
              help="Dataset split evaluated with --model.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Slices per network call with --model.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              show_default="<PRED>_evaluation beside --pred, or <DATA name>_<split>_evaluation with --model",
              help="Report directory to create (must not exist).")
@click.option("--scoring", type=click.Choice(["chaos", "sliver07"]), default="chaos", show_default=True,
              help="Score mapping (0-100) averaged into the overall score.")
@click.option("--postprocess/--no-postprocess", default=None,
              show_default="off with --pred/--ref, the model's own with --model",
              help="Keep only the largest 26-connected 3D component of the liver (of every class when there is "
                   "no liver) before scoring. Off by default for existing segmentations: masks are scored as "
                   "given, as CHAOS, nnU-Net and MONAI do.")
@click.option("--largest-component", "largest_component", default=None, metavar="CLASSES", hidden=True,
              help="Alias of --postprocess for the given comma-separated classes.")
@click.option("--no-largest-component", is_flag=True, hidden=True, help="Alias of --no-postprocess.")
@click.option("--no-overlays", is_flag=True, help="Skip the overlay PNGs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.option("-v", "--verbose", is_flag=True, help="Also print each case's Dice per class.")
@user_errors
def evaluate(pred_dir, ref_dir, labels_text, ref_labels_text, model_path, data_dir, split, batch_size, out_dir,
             scoring, postprocess, largest_component, no_largest_component, no_overlays, quiet, verbose):
    """Evaluate segmentations: Dice, VO, RVD, ASSD, RMSD, MSSD, HD95, precision, recall and 0-100 scores.

    Either existing segmentations (--pred PRED --ref REF: NIfTI label maps, two files or folders matched by
    file name, spacing from the reference header; cases grouped by modality when a dataset.json sits in
    REF or its parent), or a model (--model MODEL --data DATASET_DIR [--split test]: every labelled case of
    the split is predicted as `cdseg predict` does, then evaluated, grouped by the modality in dataset.json).
    Label values present in either map but not evaluated are named in a warning. Writes report.json,
    per_case.csv, report.md and overlays/ into the report directory.
    """
    if no_largest_component and postprocess:
        raise CdsegError("give --postprocess or --no-postprocess (--no-largest-component), not both")
    if largest_component is not None and (no_largest_component or postprocess is False):
        raise CdsegError("give --largest-component CLASSES or --no-postprocess, not both")
    largest = _largest_component_names(largest_component, no_largest_component or postprocess is False)
    if model_path is not None or data_dir is not None:
        if pred_dir is not None or ref_dir is not None:
            raise CdsegError("give either --pred/--ref or --model/--data, not both")
        if model_path is None or data_dir is None:
            raise CdsegError("give both --model MODEL and --data DATASET_DIR")
        if labels_text is not None or ref_labels_text is not None:
            raise CdsegError("--labels applies to --pred/--ref; with --data the labels come from dataset.json")
        _evaluate_model(model_path, data_dir, split, batch_size, out_dir, scoring, largest, not no_overlays,
                        not quiet, verbose)  # fmt: skip
        return
    if pred_dir is None or ref_dir is None:
        raise CdsegError("give both --pred PRED and --ref REF (files or folders), or --model MODEL --data DATASET_DIR")
    _evaluate_files(pred_dir, ref_dir, labels_text, ref_labels_text, out_dir, scoring, largest, bool(postprocess),
                    not no_overlays, not quiet, verbose)  # fmt: skip


def _largest_component_names(text, disabled):
    """Class names to post-process: () when disabled, None for "the default of the mode" (see --largest-component)."""
    if disabled:
        return ()
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise CdsegError(f"--largest-component needs class names, e.g. liver; received {text!r}")
    return names


def _check_class_names(names, labels):
    unknown = [name for name in names or () if name not in labels]
    if unknown:
        from keras_cdseg.errors import InputError

        raise InputError("--largest-component", f"unknown classes {unknown}; classes are {sorted(labels)}")


def _evaluate_files(pred_dir, ref_dir, labels_text, ref_labels_text, out_dir, scoring, largest_component_classes,
                    postprocess, overlays, progress, verbose):  # fmt: skip
    from keras_cdseg.evaluation import files, run_evaluation
    from keras_cdseg.evaluation.label_mapping import LabelCoverage, label_mapping

    metadata = files.read_dataset_metadata(ref_dir) if Path(ref_dir).is_dir() else None
    default = metadata["labels"] if metadata is not None else files.DEFAULT_LABELS
    mapping = label_mapping(labels_text, ref_labels_text, default)
    labels = mapping.labels
    if largest_component_classes is None and postprocess:
        largest_component_classes = ("liver",) if "liver" in labels else tuple(labels)
    _check_class_names(largest_component_classes, labels)
    skipped = []
    pairs = files.match_pairs(pred_dir, ref_dir, metadata, skipped=skipped)
    files.check_headers(pairs)
    if skipped and progress:
        names = ", ".join(path.name for path in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        click.echo(f"Note: {len(skipped)} scan(s) in {ref_dir} set aside (not label maps): {names}", err=True)
    if out_dir is None:
        resolved = Path(pred_dir).resolve()
        stem = resolved.name if resolved.is_dir() else files.case_name(resolved)
        out_dir = resolved.parent / f"{stem}_evaluation"
    coverage = LabelCoverage(mapping)
    settings = {
        "pred_dir": str(Path(pred_dir).resolve()),
        "ref_dir": str(Path(ref_dir).resolve()),
        "dataset_json": metadata["source"] if metadata else None,
        "label_mapping": mapping.describe(),
        "unevaluated_label_values": coverage.unevaluated_record,  # filled while the cases are read
    }
    report = run_evaluation(
        files.iter_case_pairs(pairs, with_images=overlays, mapping=mapping, coverage=coverage),
        labels,
        out_dir,
        scoring=scoring,
        largest_component_classes=largest_component_classes or (),
        overlays=overlays,
        num_cases=len(pairs),
        settings=settings,
        progress=progress,
    )
    warning = coverage.warning()
    if warning:
        click.echo(f"Warning: {warning}", err=True)
    _print_summary(report, scoring, out_dir, verbose)


def _evaluate_model(model_path, data_dir, split, batch_size, out_dir, scoring, largest_component_classes, overlays,
                    progress, verbose):
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.errors import InputError
    from keras_cdseg.evaluation.model_cases import evaluate_model
    from keras_cdseg.inference.predictors import load_predictor

    index = load_dataset(data_dir)  # a bad dataset fails before the model is loaded
    _check_class_names(largest_component_classes, index.labels)
    out_dir = Path(out_dir) if out_dir is not None else Path(f"{index.root.name}_{split}_evaluation")
    if out_dir.exists():
        raise InputError(out_dir, "report directory already exists; choose another --out or remove it")
    with native_logs.quiet_native_logs():
        predictor = load_predictor(model_path)
    click.echo(f"Model: {predictor.describe()}")
    report = evaluate_model(predictor, data_dir, out_dir, split=split, scoring=scoring,
                            largest_component_classes=largest_component_classes, overlays=overlays,
                            batch_size=batch_size, progress=progress, model_path=model_path)  # fmt: skip
    _print_summary(report, scoring, out_dir, verbose)


def _print_summary(report, scoring, out_dir, verbose=False):
    if verbose:
        for case in report["cases"]:
            dice = ", ".join(f"{name} Dice {m['dice']:.3f}" for name, m in case["classes"].items())
            click.echo(f"{case['case_id']}: {dice}")
    for class_name, groups in report["summary"].items():
        parts = [f"{group} {stats['scores']['overall']['mean']:.2f}" for group, stats in groups.items()
                 if stats["num_cases"]]
        click.echo(f"{class_name}: overall score ({scoring}) " + ", ".join(parts))
    click.echo(f"Report: {out_dir}")
