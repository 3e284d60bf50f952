"""`cdseg evaluate`: metrics, scores and reports for existing segmentations or for a model on a dataset."""

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
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Model to evaluate (run directory, .keras, exported version directory, .tflite); needs --data.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="Dataset directory (MSD layout with dataset.json) whose --split is predicted and evaluated.")
@click.option("--split", type=click.Choice(["test", "training", "all"]), default="test", show_default=True,
              help="Dataset split evaluated with --model.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Slices per network call with --model.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Report directory to create (must not exist). Default: <PRED_DIR>_evaluation beside PRED_DIR, "
                   "or <DATA_DIR name>_<split>_evaluation in the current folder with --model.")
@click.option("--scoring", type=click.Choice(["chaos", "sliver07"]), default="chaos", show_default=True,
              help="Score mapping (0-100) averaged into the overall score.")
@click.option("--largest-component", "largest_component", default=None, metavar="CLASSES",
              help="Comma-separated classes whose prediction keeps only its largest 26-connected 3D component "
                   "before scoring. Default: none with --pred/--ref (masks are scored as given, as CHAOS, "
                   "nnU-Net and MONAI do); the model's own post-processing (the liver) with --model.")
@click.option("--no-largest-component", is_flag=True,
              help="With --model: score the network's raw prediction, without the model's post-processing.")
@click.option("--no-overlays", is_flag=True, help="Skip the overlay PNGs.")
@click.option("--quiet", is_flag=True, help="No progress line.")
@user_errors
def evaluate(pred_dir, ref_dir, labels_text, model_path, data_dir, split, batch_size, out_dir, scoring,
             largest_component, no_largest_component, no_overlays, quiet):
    """Evaluate segmentations: Dice, VO, RVD, ASSD, RMSD, MSSD, HD95, precision, recall and 0-100 scores.

    Either existing segmentations (--pred PRED_DIR --ref REF_DIR: NIfTI label maps matched by file name,
    spacing from the reference header; cases grouped by modality when a dataset.json sits in REF_DIR or its
    parent), or a model (--model MODEL --data DATASET_DIR [--split test]: every labelled case of the split
    is predicted as `cdseg predict` does, then evaluated, grouped by the modality in dataset.json).
    Writes report.json, per_case.csv, report.md and overlays/ into the report directory.
    """
    if largest_component is not None and no_largest_component:
        raise CdsegError("give --largest-component CLASSES or --no-largest-component, not both")
    largest = _largest_component_names(largest_component, no_largest_component)
    if model_path is not None or data_dir is not None:
        if pred_dir is not None or ref_dir is not None:
            raise CdsegError("give either --pred/--ref or --model/--data, not both")
        if model_path is None or data_dir is None:
            raise CdsegError("give both --model MODEL and --data DATASET_DIR")
        if labels_text is not None:
            raise CdsegError("--labels applies to --pred/--ref; with --data the labels come from dataset.json")
        _evaluate_model(model_path, data_dir, split, batch_size, out_dir, scoring, largest, not no_overlays,
                        not quiet)
        return
    if pred_dir is None or ref_dir is None:
        raise CdsegError("give both --pred PRED_DIR and --ref REF_DIR (or --model MODEL --data DATASET_DIR)")
    _evaluate_files(pred_dir, ref_dir, labels_text, out_dir, scoring, largest or (), not no_overlays, not quiet)


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
    _check_class_names(largest_component_classes, labels)
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
    _print_summary(report, scoring, out_dir)


def _evaluate_model(model_path, data_dir, split, batch_size, out_dir, scoring, largest_component_classes, overlays,
                    progress):
    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.errors import InputError
    from keras_cdseg.evaluation.model_cases import evaluate_model
    from keras_cdseg.inference.predictors import load_predictor

    index = load_dataset(data_dir)  # a bad dataset fails before the model is loaded
    _check_class_names(largest_component_classes, index.labels)
    out_dir = Path(out_dir) if out_dir is not None else Path(f"{index.root.name}_{split}_evaluation")
    if out_dir.exists():
        raise InputError(out_dir, "report directory already exists; choose another --out or remove it")
    predictor = load_predictor(model_path)
    click.echo(f"Model: {predictor.describe()}")
    report = evaluate_model(predictor, data_dir, out_dir, split=split, scoring=scoring,
                            largest_component_classes=largest_component_classes, overlays=overlays,
                            batch_size=batch_size, progress=progress, model_path=model_path)  # fmt: skip
    _print_summary(report, scoring, out_dir)


def _print_summary(report, scoring, out_dir):
    for class_name, groups in report["summary"].items():
        parts = [f"{group} {stats['scores']['overall']['mean']:.2f}" for group, stats in groups.items()
                 if stats["num_cases"]]
        click.echo(f"{class_name}: overall score ({scoring}) " + ", ".join(parts))
    click.echo(f"Report: {out_dir}")
