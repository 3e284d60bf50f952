"""The command line shared by the scripts that check a benchmark's folds (scripts/check_*.py).

Each takes RESULTS_DIR and `--variant`, runs its check, writes RESULTS_DIR/<stem>.json and .md atomically and
prints the table; bad input is one line `Error: <file>: <problem>` and exit code 2.
"""

import argparse
import sys
from pathlib import Path


def run_fold_check(description, check, render, stem, title, argv=None):
    """Parses `argv`, runs `check(results_dir, variant)` and writes its record and `render(record)`.

    Args:
        description: the script's one-line description (its --help).
        check: callable(results_dir, variant) -> record with a `rule`; raises InputError on bad input.
        render: callable(record) -> the markdown table.
        stem: file name stem of the outputs inside RESULTS_DIR.
        title: callable(record) -> the markdown title.
        argv: list of str or None (sys.argv).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("results_dir", type=Path, help="the benchmark's RESULTS_DIR (cdseg experiment cross-domain --out)")
    parser.add_argument("--variant", default="method", help="the benchmark model whose folds are used")
    args = parser.parse_args(argv)
    from keras_cdseg.errors import InputError
    from keras_cdseg.io_utils import write_json_atomic, write_text_atomic

    try:
        record = check(args.results_dir, args.variant)
    except InputError as e:  # the project's rule for bad input: one line naming the file, exit code 2
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    table = render(record)
    write_json_atomic(args.results_dir / f"{stem}.json", record)
    write_text_atomic(args.results_dir / f"{stem}.md", f"# {title(record)}\n\n{record['rule']}.\n\n{table}")
    print(table)
