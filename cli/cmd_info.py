"""`cdseg info`: versions, devices, the training strategy `cdseg train` would choose, default settings."""

import json

import click

from cdseg.errors import user_errors


@click.command()
@user_errors
def info():
    """Print versions, GPUs, the strategy `cdseg train` would choose and default settings as JSON."""
    import dataclasses
    import platform

    import keras
    import tensorflow as tf

    import keras_cdseg
    from keras_cdseg.config import DataConfig, ModelConfig
    from keras_cdseg.distribute import auto_strategy_kind

    kind, reason = auto_strategy_kind()
    gpus = tf.config.list_physical_devices("GPU")
    record = {
        "keras_cdseg": keras_cdseg.__version__,
        "python": platform.python_version(),
        "keras_backend": keras.backend.backend(),
        "tensorflow": tf.__version__,
        "tensorflow_built_with_cuda": tf.test.is_built_with_cuda(),
        "keras": keras.__version__,
        "tensorboard": _version("tensorboard"),
        "jax": _version("jax"),
        "gpus": [{"name": gpu.name, **tf.config.experimental.get_device_details(gpu)} for gpu in gpus],
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "training_strategy": {"kind": kind, "reason": reason},
        "data_config": dataclasses.asdict(DataConfig()),
        "model_config": dataclasses.asdict(ModelConfig()),
    }
    if keras.backend.backend() == "jax":
        import jax

        record["jax_devices"] = [str(d) for d in jax.devices()]
    click.echo(json.dumps(record, indent=2, default=str))


def _version(distribution):
    """Installed version of a distribution, or None."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
