"""Deprecated alias of `keras_cdseg.inference.predictors` (moved in 0.2; this path is removed in 0.3)."""

import importlib
import warnings

warnings.warn(
    "keras_cdseg.predictors moved to keras_cdseg.inference.predictors; import it from there (the old path is removed in 0.3)",
    DeprecationWarning,
    stacklevel=2,
)
_module = importlib.import_module("keras_cdseg.inference.predictors")


def __getattr__(name):
    return getattr(_module, name)
