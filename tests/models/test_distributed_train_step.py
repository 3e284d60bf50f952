"""One adversarial step on 2 replicas must equal the same step on 1 device (conftest splits the CPU)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cdseg.distribute import make_strategy
from keras_cdseg.models.cross_domain_model import CrossDomainModel
from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

GLOBAL_BATCH = 4

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="MirroredStrategy is TensorFlow's (JAX: tests/backends/test_jax_data_parallel.py)",
)


def build(norm, synchronized, weights=None):
    generator = build_segmenter((32, 32, 3), num_classes=2, base_filters=4, depth=2, norm=norm, synchronized=synchronized)
    discriminator = build_discriminator(norm=norm, synchronized=synchronized, filters=4, num_blocks=2, dense_units=8)
    model = CrossDomainModel(generator, discriminator, class_names=["background", "liver"])
    if weights is not None:
        model.set_weights(weights)
    # SGD: Adam's first step is ≈ lr·sign(g), blind to a gradient scaled by the replica count.
    model.compile(keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5), adversarial_weight=0.5)
    return model


def one_step(model, x, y):
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    history = model.fit(data, epochs=1, verbose=0, shuffle=False)
    return {k: v[-1] for k, v in history.history.items()}


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_two_replicas_match_one_device(norm):
    rng = np.random.default_rng(3)
    x = rng.random((GLOBAL_BATCH, 32, 32, 3), dtype="float32")
    y = np.eye(2, dtype="float32")[(x[..., 0] > 0.5).astype(int)]
    keras.utils.set_random_seed(0)
    initial = build(norm, synchronized=True).get_weights()

    single = build(norm, synchronized=True, weights=initial)
    single_logs = one_step(single, x, y)

    strategy = make_strategy(cpu_replicas=2)
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = build(norm, synchronized=True, weights=initial)
    mirrored_logs = one_step(mirrored, x, y)

    if norm == "batch":
        assert mirrored.generator.get_layer("down1").norm_layer.synchronized
    # Logged losses are global means, not divided (or multiplied) by the replica count.
    for key in ("seg_loss", "d_loss", "g_adv_loss"):
        assert mirrored_logs[key] == pytest.approx(single_logs[key], rel=1e-5), key

    names = [w.path for w in single.weights]
    for name, w0, a, b in zip(names, initial, single.get_weights(), mirrored.get_weights()):
        update_single, update_mirrored = a - w0, b - w0
        scale = max(np.abs(update_single).max(), 1e-12)
        assert np.abs(update_mirrored - update_single).max() <= 1e-5 * scale + 1e-7, name
    # The step really moved the weights (otherwise agreement would be vacuous).
    assert any(np.abs(a - w0).max() > 1e-4 for w0, a in zip(initial, single.get_weights()))


def test_unsynchronized_batch_norm_differs_across_replicas():
    """Sanity check of the test itself: per-replica BN statistics must change the update."""
    rng = np.random.default_rng(4)
    x = rng.random((GLOBAL_BATCH, 32, 32, 3), dtype="float32")
    x[2:] *= 5.0  # the second replica sees a different intensity distribution
    y = np.eye(2, dtype="float32")[(x[..., 0] > 0.5).astype(int)]
    keras.utils.set_random_seed(0)
    initial = build("batch", synchronized=False).get_weights()
    single = build("batch", synchronized=False, weights=initial)
    one_step(single, x, y)
    with make_strategy(cpu_replicas=2).scope():
        mirrored = build("batch", synchronized=False, weights=initial)
    one_step(mirrored, x, y)
    worst = max(np.abs((b - w0) - (a - w0)).max() for w0, a, b in zip(initial, single.get_weights(), mirrored.get_weights()))
    assert worst > 1e-4
