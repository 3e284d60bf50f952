"""Deprecated alias of `keras_cdseg.data.phantoms.synthetic` (moved in 0.2; this path is removed in 0.3)."""

import importlib
import warnings

warnings.warn(
    "keras_cdseg.data.synthetic moved to keras_cdseg.data.phantoms.synthetic; import it from there (the old path is removed in 0.3)",
    DeprecationWarning,
    stacklevel=2,
)
_module = importlib.import_module("keras_cdseg.data.phantoms.synthetic")


def __getattr__(name):
    return getattr(_module, name)
