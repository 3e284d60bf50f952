"""Options spelled the same way by every command: -q/--quiet, -v/--verbose (and what they do to TensorFlow)."""

import json

import click

from cdseg import native_logs


def _show_framework_logs(ctx, param, value):
    if value:  # a flag's True, or a level >= 1
        native_logs.show_all()
    return value


def verbose_flag(fn):
    """`-v/--verbose`: also show TensorFlow's own log lines (C++ and Python). Not passed to the command."""
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
                        callback=_show_framework_logs, help="Also show TensorFlow's own log lines.")(fn)  # fmt: skip


def progress_options(fn):
    """`-q/--quiet` and `-v/--verbose [LEVEL]` for commands that train (passed as `quiet`, `verbose`).

    A bare -v shows TensorFlow's own log lines; the level form `--verbose 0|1|2` is 0.2's spelling of Keras'
    progress verbosity, kept for one release (0 = -q).
    """
    fn = click.option("-v", "--verbose", type=click.IntRange(0, 2), is_flag=False, flag_value=1, default=None,
                      metavar="[LEVEL]", callback=_show_framework_logs,
                      help="Also show TensorFlow's own log lines. (Deprecated: --verbose 0|1|2 sets Keras' "
                           "progress display; use -q for 0.)")(fn)  # fmt: skip
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bar: a status line per validation (step, loss, score, time left) "
                             "and errors.")(fn)  # fmt: skip


def keras_verbosity(quiet, verbose):
    """Keras `fit` verbosity: 0 with -q (or the old --verbose 0), 2 with the old --verbose 2, else "auto"."""
    if quiet or verbose == 0:
        return 0
    return 2 if verbose == 2 else "auto"


def configured_backend():
    """The backend Keras will use, read the way Keras reads it (KERAS_BACKEND, else keras.json), without importing it."""
    import os
    from pathlib import Path

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((keras_home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"
