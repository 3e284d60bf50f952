"""`cdseg synth OUT_DIR`: write the built-in cross-domain dataset of CT and MR phantoms."""

import click

from cdseg.errors import user_errors


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--seed", default=0, show_default=True, type=int, help="Dataset seed; same seed, same bytes.")
@click.option("--num-ct", default=20, show_default=True, type=click.IntRange(min=0), help="Number of CT cases.")
@click.option("--num-mr", default=20, show_default=True, type=click.IntRange(min=0), help="Number of MR cases.")
@click.option(
    "--size",
    type=click.Choice(["small", "full"]),
    default="full",
    show_default=True,
    help="full: CT 512x512 at 0.66-0.8 mm, 2-3 mm slices; MR 256/288 at 1.4-1.9 mm, 5.5-9 mm slices. "
    "small: CT 128x128x28, MR 96x96x18 (quick, for tests and demos).",
)
@click.option(
    "--test-fraction",
    default=0.2,
    show_default=True,
    type=click.FloatRange(min=0.0, max=1.0, max_open=True),
    help="Fraction of each modality's cases in the test split.",
)
@click.option(
    "--num-test", default=None, type=click.IntRange(min=0), help="Test cases per modality (overrides --test-fraction)."
)
@click.option(
    "--labels",
    default="liver,spleen,kidneys",
    show_default=True,
    help="Labelled organs: liver (always 1) plus any of spleen, kidneys (one label) or right_kidney,left_kidney; "
    "values follow the order given.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it is an earlier synthetic dataset.")
@click.option("-q", "--quiet", is_flag=True, help="No per-case progress lines.")
@user_errors
def synth(out_dir, seed, num_ct, num_mr, size, test_fraction, num_test, labels, overwrite, quiet):
    """Write unpaired CT and MR abdominal phantoms as a dataset directory.

    OUT_DIR gets imagesTr/, labelsTr/, imagesTs/, labelsTs/, dataset.json and synth.json (settings and
    per-case parameters). It must not exist (unless --overwrite); it appears only when complete.
    """
    import time

    from keras_cdseg.data.phantoms.synthetic import write_synthetic_dataset

    def progress(done, total, case_id, message):
        click.echo(f"[{done}/{total}] {case_id}: {message}", err=True)

    start = time.perf_counter()
    dataset = write_synthetic_dataset(
        out_dir,
        num_ct=num_ct,
        num_mr=num_mr,
        seed=seed,
        size=size,
        num_test=num_test,
        test_fraction=test_fraction,
        labels=labels,
        overwrite=overwrite,
        progress=None if quiet else progress,
    )
    seconds = time.perf_counter() - start

    def count(cases, modality):
        return sum(1 for c in cases if c.modality == modality)

    click.echo(f"Wrote {dataset.root} ({size}, seed {seed}) in {seconds:.1f} s")
    for split, cases in (("training", dataset.training), ("test", dataset.test)):
        click.echo(f"  {split}: {len(cases)} cases (CT {count(cases, 'CT')}, MR {count(cases, 'MR')})")
    click.echo("  labels: " + ", ".join(f"{name}={value}" for name, value in dataset.labels.items()))
