"""One adversarial step under `keras.distribution.DataParallel` on 2 devices vs 1 device (a script).

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax python tests/backends/jax_data_parallel.py OUT.json

Writes how far every weight (both networks, BatchNorm statistics included) is from the 1-device step,
the logs, and the number of devices the variables and the step ran on.
"""

import json
import sys

import jax
import keras
import numpy as np

from tests.backends.backend_step import get_state

SHAPE, BATCH = (32, 32, 3), 4


def build(state=None):
    from keras_cdseg.models.cross_domain_model import CrossDomainModel
    from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

    keras.utils.set_random_seed(0)
    generator = build_segmenter(SHAPE, num_classes=2, base_filters=4, depth=2, norm="batch")
    discriminator = build_discriminator(norm="batch", filters=4, num_blocks=2, dense_units=8)
    model = CrossDomainModel(generator, discriminator, class_names=["bg", "liver"])
    if state is not None:
        model.generator.set_weights([state[f"g_{i}"] for i in range(len(model.generator.weights))])
        model.discriminator.set_weights([state[f"d_{i}"] for i in range(len(model.discriminator.weights))])
    # SGD: Adam's first step is ≈ lr·sign(g), blind to a gradient scaled by the device count.
    model.compile(keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5), adversarial_weight=0.5)
    return model


def one_step(model, x, y):
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return {name: values[-1] for name, values in history.history.items()}


def main(out_path):
    assert len(jax.devices()) >= 2, jax.devices()
    rng = np.random.default_rng(3)
    x = rng.random((BATCH,) + SHAPE, dtype="float32")
    y = np.eye(2, dtype="float32")[(x[..., 0] > 0.5).astype(int)]
    initial = get_state(build())

    single = build(initial)
    single_logs = one_step(single, x, y)

    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices()[:2])
    with distribution.scope():
        parallel = build(initial)
        parallel_logs = one_step(parallel, x, y)
        devices = len(parallel.generator.trainable_variables[0].value.sharding.device_set)
    a, b = get_state(single), get_state(parallel)
    result = {
        "mesh_devices": int(np.prod(distribution.device_mesh.shape)),
        "variable_devices": devices,
        "moved": sum(not np.array_equal(a[k], initial[k]) for k in a),
        "num_weights": len(a),
        # > 0 where |a - b| exceeds numpy's allclose bound atol + rtol·|a| (rtol 1e-4, atol 2e-5).
        "max_excess": {k: float(np.max(np.abs(a[k] - b[k]) - (2e-5 + 1e-4 * np.abs(a[k])))) for k in a},
        "max_abs_diff": max(float(np.max(np.abs(a[k] - b[k]))) for k in a),
        "single_logs": single_logs,
        "parallel_logs": parallel_logs,
        "d_iterations": int(keras.ops.convert_to_numpy(parallel.d_optimizer.iterations)),
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
