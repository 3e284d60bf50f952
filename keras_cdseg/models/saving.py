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
    except (ValueError, OSError, TypeError, KeyError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(path, f"not a loadable Keras model ({message[:200]})") from None
