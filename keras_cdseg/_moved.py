"""Deprecated module paths of 0.1, kept for one release: each old module forwards to its new home."""

import importlib
import warnings


def forward_to(old, new):
    """Warns that `old` moved to `new` (once, at import) and returns a module `__getattr__` reading from `new`."""
    warnings.warn(f"{old} moved to {new}; import it from there (the old path is removed in 0.3)",
                  DeprecationWarning, stacklevel=3)  # fmt: skip
    module = importlib.import_module(new)

    def __getattr__(name):
        return getattr(module, name)

    return __getattr__
