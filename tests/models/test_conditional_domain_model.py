import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cdseg.distribute import make_strategy
from keras_cdseg.layers.conditional_conv_block import ConditionalConvBlock
from keras_cdseg.models.conditional_domain_model import ConditionalDomainModel
from keras_cdseg.models.conditional_segmenter import build_conditional_segmenter
from keras_cdseg.models.segmenter import build_discriminator

MODALITIES = ["CT", "MR"]
TENSORFLOW_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape / tf.train.Checkpoint / MirroredStrategy"
)


def make_model(
    adversarial_weight=1e-3,
    modality_weight=1.0,
    optimizer=None,
    d_optimizer=None,
    norm="batch",
    synchronized=False,
    seed=0,
):
    keras.utils.set_random_seed(seed)
    generator = build_conditional_segmenter(
        (32, 32, 3), base_filters=4, depth=2, norm=norm, synchronized=synchronized, classifier_filters=4,
        classifier_blocks=2,
    )
    discriminator = build_discriminator(norm=norm, synchronized=synchronized, filters=4, num_blocks=2, dense_units=8)
    model = ConditionalDomainModel(
        generator, discriminator, class_names=["background", "liver"], modality_names=MODALITIES
    )
    model.compile(
        optimizer or keras.optimizers.Adam(1e-3),
        d_optimizer or keras.optimizers.Adam(1e-3),
        adversarial_weight=adversarial_weight,
        modality_weight=modality_weight,
    )
    return model


def make_batch(num=4, seed=0):
    """CT-like slices are bright, MR-like dark: the modality is obvious from intensity."""
    rng = np.random.default_rng(seed)
    is_mr = np.arange(num) % 2
    x = rng.random((num, 32, 32, 3), dtype="float32") * np.where(is_mr, 0.3, 1.0)[:, None, None, None].astype("float32")
    y = np.eye(2, dtype="float32")[(x[..., 1] > 0.5 * x[..., 1].mean()).astype(int)]
    return x, {"segmentation": y, "modality": np.eye(2, dtype="float32")[is_mr]}


def test_generator_conditions_every_block_but_the_stem_on_its_classifier():
    generator = make_model().generator
    conditioned = [layer.name for layer in generator.layers if isinstance(layer, ConditionalConvBlock)]
    assert conditioned == ["down1", "down2", "up1", "up0"]
    assert generator.input.name == "slices" and generator.output_shape == (None, 32, 32, 2)
    assert generator.get_layer("probabilities").dtype_policy.compute_dtype == "float32"


def test_one_step_updates_every_weight_and_logs_the_modality_terms():
    model = make_model()
    before = [w.numpy().copy() for w in model.generator.trainable_weights]
    logs = model.train_on_batch(*make_batch(), return_dict=True)
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.generator.trainable_weights))
    assert set(logs) == {
        "seg_loss", "g_adv_loss", "d_loss", "dice_background", "dice_liver", "modality_loss", "modality_accuracy"
    }
    # An untrained two-way classifier: cross-entropy ≈ log 2.
    assert 0.3 < logs["modality_loss"] < 1.5


@TENSORFLOW_ONLY
def test_generator_loss_gains_exactly_modality_weight_times_the_classifier_cross_entropy():
    """With SGD the update is linear in the loss: the weight-3 update minus the weight-0 update must be
    −lr · 3 · ∇CE, which touches only the classifier."""
    lr, x, targets = 0.1, *make_batch()
    updates = {}
    for weight in (0.0, 3.0):
        model = make_model(adversarial_weight=0.0, modality_weight=weight, optimizer=keras.optimizers.SGD(lr))
        initial = [w.numpy().copy() for w in model.generator.trainable_weights]
        model.train_on_batch(x, targets)
        updates[weight] = [w.numpy() - w0 for w, w0 in zip(model.generator.trainable_weights, initial)]
    model = make_model(adversarial_weight=0.0)  # same seed: same initial weights
    classifier = model.modality_classifier
    with tf.GradientTape() as tape:
        probabilities = classifier(x, training=True)
        cross_entropy = keras.ops.mean(keras.losses.categorical_crossentropy(targets["modality"], probabilities))
    weights = classifier.trainable_weights
    gradients = dict(zip([w.path for w in weights], tape.gradient(cross_entropy, weights)))
    for w, with_loss, without in zip(model.generator.trainable_weights, updates[3.0], updates[0.0]):
        expected = -lr * 3.0 * gradients[w.path].numpy() if w.path in gradients else np.zeros_like(without)
        np.testing.assert_allclose(with_loss - without, expected, rtol=1e-3, atol=1e-6, err_msg=w.path)
    assert max(np.abs(g.numpy()).max() for g in gradients.values()) > 1e-4


def test_modality_loss_decreases_on_an_easy_task_and_inference_needs_only_slices():
    model = make_model(adversarial_weight=0.0)
    model.compile(keras.optimizers.Adam(1e-2), adversarial_weight=0.0, modality_weight=1.0)
    x, targets = make_batch(num=8)
    first = model.evaluate(x, targets, return_dict=True, verbose=0)
    model.fit(x, targets, batch_size=8, epochs=30, verbose=0)
    last = model.evaluate(x, targets, return_dict=True, verbose=0)
    assert last["modality_loss"] < 0.5 * first["modality_loss"]
    assert last["modality_accuracy"] == 1.0
    # Test time: slices only. The prediction is the generator's, conditioned on its own classifier.
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities, keras.ops.convert_to_numpy(model.generator(x)), atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    seg_only = model.evaluate(x, targets["segmentation"], return_dict=True, verbose=0)
    assert set(seg_only) == {"seg_loss", "dice_background", "dice_liver"}
    assert seg_only["seg_loss"] == pytest.approx(last["seg_loss"], rel=1e-5)


def test_training_without_modality_labels_is_refused():
    model = make_model()
    x, targets = make_batch()
    with pytest.raises(ValueError, match="'modality': m_onehot"):
        model.train_on_batch(x, targets["segmentation"])


def test_round_trips_through_keras_files(tmp_path):
    model = make_model(modality_weight=0.25)
    x, targets = make_batch()
    model.train_on_batch(x, targets)
    model.save(tmp_path / "model.keras")
    model.generator.save(tmp_path / "generator.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    generator = keras.saving.load_model(tmp_path / "generator.keras", safe_mode=True)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(generator.predict(x, verbose=0), expected, atol=1e-6)
    assert type(restored) is ConditionalDomainModel
    assert restored.modality_weight == 0.25 and restored.modality_names == MODALITIES


@TENSORFLOW_ONLY
def test_tf_checkpoints_reach_every_variable(tmp_path):
    model = make_model(modality_weight=0.25)
    model.train_on_batch(*make_batch())
    # Training checkpoints (tf.train.Checkpoint) must reach every variable, the classifier's included.
    path = tf.train.Checkpoint(generator=model.generator).write(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(saved) == len(model.generator.weights)


@TENSORFLOW_ONLY
def test_two_replicas_match_one_device():
    """The labels reach the classifier per replica thread; synchronized BatchNorm interleaves the replicas'
    forward passes, so a label mix-up between replicas would show here."""
    x, targets = make_batch(num=4, seed=1)
    data = tf.data.Dataset.from_tensor_slices((x, targets)).batch(4)

    def build(weights=None):
        # SGD: Adam's first step is ≈ lr·sign(g), blind to a gradient scaled by the replica count.
        model = make_model(
            norm="batch", synchronized=True, optimizer=keras.optimizers.SGD(0.5), d_optimizer=keras.optimizers.SGD(0.5),
            adversarial_weight=0.5,
        )
        if weights is not None:
            model.set_weights(weights)
        return model

    initial = build().get_weights()
    single = build(initial)
    single_logs = {k: v[-1] for k, v in single.fit(data, epochs=1, verbose=0, shuffle=False).history.items()}
    with make_strategy(cpu_replicas=2).scope():
        mirrored = build(initial)
    mirrored_logs = {k: v[-1] for k, v in mirrored.fit(data, epochs=1, verbose=0, shuffle=False).history.items()}
    for key in ("seg_loss", "d_loss", "modality_loss", "modality_accuracy"):
        assert mirrored_logs[key] == pytest.approx(single_logs[key], rel=1e-5), key
    for w, w0, a, b in zip(single.weights, initial, single.get_weights(), mirrored.get_weights()):
        scale = max(np.abs(a - w0).max(), 1e-12)
        assert np.abs((b - w0) - (a - w0)).max() <= 1e-5 * scale + 1e-7, w.path
