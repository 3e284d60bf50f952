import keras
import numpy as np
import pytest

from keras_cdseg import losses
from keras_cdseg.models.cross_domain_model import CrossDomainModel
from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

CLASS_NAMES = ["background", "liver"]


def make_model(adversarial_weight=1e-3, norm="batch", with_discriminator=True, seed=0):
    keras.utils.set_random_seed(seed)
    generator = build_segmenter((32, 32, 3), num_classes=2, base_filters=4, depth=2, norm=norm)
    discriminator = build_discriminator(norm=norm, filters=4, num_blocks=2, dense_units=8) if with_discriminator else None
    model = CrossDomainModel(generator, discriminator, class_names=CLASS_NAMES)
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=adversarial_weight)
    return model


def make_batch(num=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((num, 32, 32, 3), dtype="float32")
    y = np.eye(2, dtype="float32")[(x[..., 1] > 0.6).astype(int)]
    return x, y


def snapshot(layer):
    return [w.numpy().copy() for w in layer.trainable_weights]


def changed(before, layer):
    return [not np.array_equal(b, w.numpy()) for b, w in zip(before, layer.trainable_weights)]


def test_one_step_updates_generator_and_discriminator():
    model = make_model()
    g0, d0 = snapshot(model.generator), snapshot(model.discriminator)
    logs = model.train_on_batch(*make_batch(), return_dict=True)
    assert all(changed(g0, model.generator))
    assert all(changed(d0, model.discriminator))
    assert set(logs) == {"seg_loss", "g_adv_loss", "d_loss", "dice_background", "dice_liver"}
    # Before any training the critic cannot tell real from fake: d_loss ≈ 2·log 2 (two BCE terms).
    assert 0.5 < logs["d_loss"] < 4.0


def test_without_adversarial_weight_the_discriminator_is_untouched():
    model = make_model(adversarial_weight=0.0)
    d0 = snapshot(model.discriminator)
    logs = model.train_on_batch(*make_batch(), return_dict=True)
    assert not any(changed(d0, model.discriminator))
    assert model.d_optimizer is None
    assert set(logs) == {"seg_loss", "dice_background", "dice_liver"}


def test_logged_seg_loss_is_the_cross_entropy_of_the_prediction():
    model = make_model(adversarial_weight=0.0)
    x, y = make_batch()
    expected = float(np.mean(losses.segmentation_cross_entropy(y, model.predict(x, verbose=0))))
    logs = model.evaluate(x, y, batch_size=2, return_dict=True, verbose=0)
    assert logs["seg_loss"] == pytest.approx(expected, rel=1e-5)
    assert set(logs) == {"seg_loss", "dice_background", "dice_liver"}


def test_sample_weights_scale_the_segmentation_loss():
    model = make_model(adversarial_weight=0.0)
    x, y = make_batch()
    full = model.evaluate(x, y, batch_size=4, return_dict=True, verbose=0)["seg_loss"]
    half = model.evaluate(x, y, sample_weight=np.full(4, 0.5), batch_size=4, return_dict=True, verbose=0)["seg_loss"]
    assert half == pytest.approx(full / 2, rel=1e-5)


def test_losses_match_hand_computed_values():
    y = np.array([[[[0.0, 1.0]]]], "float32")
    p = np.array([[[[0.25, 0.75]]]], "float32")
    np.testing.assert_allclose(losses.segmentation_cross_entropy(y, p), [-np.log(0.75)], rtol=1e-6)
    logits = np.array([[0.0], [2.0]], "float32")
    np.testing.assert_allclose(losses.generator_adversarial_loss(logits), np.log1p(np.exp(-logits[:, 0])), rtol=1e-6)
    np.testing.assert_allclose(
        losses.discriminator_loss(logits, -logits), 2 * np.log1p(np.exp(-logits[:, 0])), rtol=1e-6
    )
    # Large logits stay finite.
    assert np.isfinite(losses.discriminator_loss(np.array([[500.0]]), np.array([[500.0]]))).all()


def test_whole_model_and_generator_round_trip_through_keras_files(tmp_path):
    model = make_model()
    x, y = make_batch()
    model.train_on_batch(x, y)
    model.save(tmp_path / "model.keras")
    model.generator.save(tmp_path / "generator.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    generator = keras.saving.load_model(tmp_path / "generator.keras", safe_mode=True)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(generator.predict(x, verbose=0), expected, atol=1e-6)
    assert restored.adversarial_weight == pytest.approx(1e-3)
    assert restored.class_names == CLASS_NAMES
    # Optimizer state came back too (Adam moments, step count): the next step is the same step.
    assert int(restored.g_optimizer.iterations) == 1 and int(restored.d_optimizer.iterations) == 1
    model.train_on_batch(x, y)
    restored.train_on_batch(x, y)
    for a, b in zip(model.generator.get_weights() + model.discriminator.get_weights(),
                    restored.generator.get_weights() + restored.discriminator.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_config_round_trip():
    model = make_model()
    config = model.get_config()
    clone = CrossDomainModel.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.train.Checkpoint is TensorFlow's")
def test_tf_checkpoint_holds_every_variable_of_both_networks(tmp_path):
    """Training checkpoints use tf.train.Checkpoint, which only follows attributes: nothing may hide in a
    list it cannot see (e.g. the discriminator's BatchNorm statistics)."""
    import tensorflow as tf

    model = make_model()
    path = tf.train.Checkpoint(generator=model.generator, discriminator=model.discriminator).write(
        str(tmp_path / "ckpt")
    )
    saved = [name for name, _ in tf.train.list_variables(path) if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(saved) == len(model.generator.weights) + len(model.discriminator.weights)
