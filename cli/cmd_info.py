"""`cdseg info`: versions and default settings at once; `--devices` also starts TensorFlow for its devices."""

import json

import click

from cdseg import native_logs
from cdseg.errors import user_errors
from cdseg.options import configured_backend


@click.command()
@click.option("--devices", is_flag=True,
              help="Also start TensorFlow (a few seconds) and list the GPUs and devices it sees and the "
                   "strategy `cdseg train` would choose.")  # fmt: skip
@click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, param, value: value and native_logs.show_all(),
              help="Also show TensorFlow's own log lines.")  # fmt: skip
@user_errors
def info(devices):
    """Print versions, the configured Keras backend, NVIDIA GPUs and default settings as JSON.

    Answers without starting TensorFlow (well under a second); `--devices` adds what TensorFlow itself sees.
    """
    import dataclasses
    import platform

    import keras_cdseg
    from keras_cdseg.config import DataConfig, ModelConfig
    from keras_cdseg.training.duration import nvidia_driver_gpus
    from keras_cdseg.pretrained import bundle_summary

    record = {
        "keras_cdseg": keras_cdseg.__version__,
        "python": platform.python_version(),
        "keras_backend": configured_backend(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "tensorboard": _version("tensorboard"),
        "jax": _version("jax"),
        "nvidia_driver_gpus": nvidia_driver_gpus(),
        "data_config": dataclasses.asdict(DataConfig()),
        "model_config": dataclasses.asdict(ModelConfig()),
        "bundled_model": bundle_summary(),  # what `cdseg predict` falls back to (`cdseg models`)
    }
    if devices:
        record.update(_tensorflow_devices())
    else:
        record["devices"] = "not started; `cdseg info --devices` lists the GPUs TensorFlow sees and the training strategy"
    click.echo(json.dumps(record, indent=2, default=str))


def _tensorflow_devices():
    import keras
    import tensorflow as tf

    from keras_cdseg.distribute import auto_strategy_kind

    kind, reason = auto_strategy_kind()
    record = {
        "tensorflow_built_with_cuda": tf.test.is_built_with_cuda(),
        "gpus": [{"name": gpu.name, **tf.config.experimental.get_device_details(gpu)}
                 for gpu in tf.config.list_physical_devices("GPU")],  # fmt: skip
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "training_strategy": {"kind": kind, "reason": reason},
    }
    if keras.backend.backend() == "jax":
        import jax

        record["jax_devices"] = [str(d) for d in jax.devices()]
    return record


def _version(distribution):
    """Installed version of a distribution, or None."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
