"""Deprecated alias of `keras_cdseg.run_dir` (moved in 0.2; this path is removed in 0.3)."""

import importlib
import warnings

warnings.warn(
    "keras_cdseg.training.run_dir moved to keras_cdseg.run_dir; import it from there (the old path is removed in 0.3)",
    DeprecationWarning,
    stacklevel=2,
)
_module = importlib.import_module("keras_cdseg.run_dir")


def __getattr__(name):
    return getattr(_module, name)
