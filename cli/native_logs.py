"""Keeping TensorFlow's C++ log lines off the console unless `-v/--verbose` or the user's TF_CPP_MIN_LOG_LEVEL asks.

Why an environment variable alone is not enough (TensorFlow 2.18-2.21, measured with `cdseg info`): loading
TensorFlow's shared libraries runs static initializers that log through Abseil before anything has called
`absl::InitializeLog()`, and an uninitialized Abseil writes *every* message to stderr whatever the threshold
(it says so in its first line, "All log messages before absl::InitializeLog() is called are written to
STDERR"). Two libraries carry their own copy of Abseil, so the oneDNN and "Could not find cuda drivers" lines
come twice; `TF_CPP_MIN_LOG_LEVEL=3` cannot silence them. Lines logged after the import (`failed call to
cuInit` when devices are first listed, `cpu_feature_guard`) do honour TF_CPP_MIN_LOG_LEVEL, as long as it is
set before TensorFlow starts.

So `install()` (called by the `cdseg` entry point before any command runs) sets TF_CPP_MIN_LOG_LEVEL unless
the user did, and wraps the first `import tensorflow` in a redirect of file descriptor 2 to a temporary file;
after the import the captured text is written back to stderr without the C++ log lines the level hides.
Everything else written meanwhile (Python warnings, our own lines) passes through in order.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# Abseil's and TensorFlow's own C++ formats: "I0000 00:00:1796527501.353530    6342 port.cc:153] ..." and
# "2024-05-01 10:00:00.000000: I tensorflow/...cc:42] ...".
_NATIVE_LINE = re.compile(
    rb"^(?:(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\]"
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tsl>[IWEF]) \S+:\d+\])"
)
# LiteRT's minimal logger: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on a model's first run.
_LITERT_INFO = re.compile(rb"^INFO: ")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
# TensorFlow's level 3 still shows FATAL lines: a crash must never be silent.
QUIET_LEVEL = 3

_state = {"installed": False, "level": QUIET_LEVEL}


def install():
    """Quiet TensorFlow's C++ logging for this process; call before anything imports TensorFlow."""
    user_level = os.environ.get(LEVEL_VARIABLE)
    if user_level is None:
        os.environ[LEVEL_VARIABLE] = str(QUIET_LEVEL)
        _quiet_python_loggers()
    _state.update(installed=True, level=_parse_level(user_level))
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


def show_all():
    """`-v/--verbose`: every C++ and Python log line of the frameworks, as if `install()` had not run.

    Only acts in the installed script (after `install()`), so Click's test runner never changes the process.
    """
    if not _state["installed"]:
        return
    os.environ[LEVEL_VARIABLE] = "0"
    _state["level"] = 0
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def keeps(line, level):
    """True when a captured stderr line should still be shown at minimum C++ log level `level` (bytes line)."""
    if line.rstrip(b"\r\n") == _ABSL_PREAMBLE:
        return level == 0  # it introduces the start-up lines; alone it says nothing
    if _LITERT_INFO.match(line):
        return level == 0
    match = _NATIVE_LINE.match(line)
    if match is None:
        return True
    return _SEVERITY[match.group("absl") or match.group("tsl")] >= level


def quiet_native_logs():
    """A context in which native log lines are filtered as for the TensorFlow import (e.g. loading a model:
    LiteRT logs on the first run, which `TFLitePredictor` makes at load). No-op unless `install()` ran."""
    if not _state["installed"] or _state["level"] == 0:
        return contextlib.nullcontext()
    return filtered_stderr(_state["level"])


@contextlib.contextmanager
def filtered_stderr(level):
    """Captures file descriptor 2 (C++ and Python writes alike) and replays the lines `keeps` allows."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = b"".join(line for line in capture if keeps(line, level))
            if kept:
                os.write(2, kept)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` like the import system would, then loads it inside `filtered_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import only; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps the real loader: importlib.resources and reloads never see this wrapper.
        module.__loader__ = module.__spec__.loader = self._loader
        if _state["level"] == 0:
            self._loader.exec_module(module)
            return
        with filtered_stderr(_state["level"]):
            self._loader.exec_module(module)


def _parse_level(text):
    if text is None:
        return QUIET_LEVEL
    try:
        return min(max(int(text), 0), QUIET_LEVEL)
    except ValueError:
        return 0  # TensorFlow reads a value it cannot parse as 0: show everything, as it would


def _quiet_python_loggers():
    # TensorFlow's and Abseil's Python loggers ("WARNING:absl:...", "WARNING:tensorflow:...") say nothing a
    # user of `cdseg` can act on; errors still show.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
