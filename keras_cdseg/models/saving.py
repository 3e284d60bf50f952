"""Loading `.keras` files of keras_cdseg models in Keras' safe mode."""

import importlib
import pkgutil
from pathlib import Path

from keras_cdseg.errors import InputError


def register_serializables():
    """Imports every layer and model module so their `register_keras_serializable` decorators have run."""
    import keras_cdseg.layers
    import keras_cdseg.models

    for package in (keras_cdseg.layers, keras_cdseg.models):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("train_step_"):
                continue  # one per backend, no serializables; only the active backend's may be importable
            importlib.import_module(f"{package.__name__}.{info.name}")


def load_model(path, compile=False):
    """Loads a `.keras` generator (or whole `CrossDomainModel`) without executing arbitrary code.

    Raises `InputError` naming the file if it is missing or not a loadable Keras model.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    register_serializables()
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as e:  # ValueError, OSError, zipfile errors...: all mean "this file is not a model".
        first_line = (str(e).strip().splitlines() or [""])[0][:160]
        raise InputError(path, f"cannot load Keras model ({type(e).__name__}: {first_line})") from None


def load_generator(path):
    """Loads a `.keras` generator for inference (not compiled, safe mode); InputError if it cannot be read."""
    return load_model(path, compile=False)
