"""Test-wide setup: the CPU is split into 2 logical devices so MirroredStrategy runs for real."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


def _check_layer(layer_cls, init_kwargs, input_data, expected_output_shape, expected_num_trainable_weights):
    """keras-hub's `run_layer_test`, reduced: config and serialization round trips, symbolic and eager
    calls, one `fit` step that changes the weights, and the trainable-weight count."""
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"get_config() misses constructor argument {key!r}"
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls and revived.get_config() == config

    def as_symbolic(data):
        if isinstance(data, (tuple, list)):
            return tuple(keras.KerasTensor(d.shape) for d in data)
        return keras.KerasTensor(data.shape)

    symbolic = layer_cls(**init_kwargs)(as_symbolic(input_data))
    assert tuple(symbolic.shape) == expected_output_shape
    output = layer(input_data)
    assert tuple(output.shape) == expected_output_shape
    assert len(layer.trainable_weights) == expected_num_trainable_weights

    inputs = (
        tuple(keras.Input(d.shape[1:]) for d in input_data)
        if isinstance(input_data, (tuple, list))
        else keras.Input(input_data.shape[1:])
    )
    fresh = layer_cls(**init_kwargs)
    model = keras.Model(inputs, fresh(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.numpy().copy() for w in fresh.trainable_weights]
    target = np.ones_like(keras.ops.convert_to_numpy(output))
    model.fit(input_data, target, batch_size=len(target), epochs=1, verbose=0)
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, fresh.trainable_weights)]
    assert any(changed), "one fit step left every trainable weight unchanged"


@pytest.fixture
def run_layer_test():
    return _check_layer


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small synthetic CT + MR dataset (liver only): 3 CT and 3 MR cases, one of each held out as test."""
    from keras_cdseg.data.phantoms.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("datasets") / "tiny"
    write_synthetic_dataset(root, num_ct=3, num_mr=3, seed=0, size="small", num_test=1, labels="liver", progress=None)
    return root
