"""`cdseg info`: versions, devices and the default configuration."""

import json

import click

from cdseg.errors import user_errors


@click.command()
@user_errors
def info():
    """Print library versions, visible devices and default settings as JSON."""
    import dataclasses
    import platform

    import keras
    import tensorflow as tf

    import keras_cdseg
    from keras_cdseg.config import DataConfig, ModelConfig

    click.echo(
        json.dumps(
            {
                "keras_cdseg": keras_cdseg.__version__,
                "python": platform.python_version(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "devices": [d.name for d in tf.config.list_logical_devices()],
                "data_config": dataclasses.asdict(DataConfig()),
                "model_config": dataclasses.asdict(ModelConfig()),
            },
            indent=2,
        )
    )
