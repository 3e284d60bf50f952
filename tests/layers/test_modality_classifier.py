import keras
import numpy as np
import pytest

from keras_cdseg.layers.modality_classifier import ModalityClassifier

RNG = np.random.default_rng(7)


def test_layer_basics(run_layer_test):
    # Per block: conv kernel + bias, PReLU alpha (no norm); then the logits' kernel + bias.
    run_layer_test(
        ModalityClassifier,
        {"num_modalities": 3, "filters": 4, "num_blocks": 2, "kernel_size": 3},
        RNG.random((2, 16, 16, 3)).astype("float32"),
        (2, 3),
        2 * 3 + 2,
    )


def test_supervision_adds_the_weighted_cross_entropy_only_in_training():
    classifier = ModalityClassifier(filters=4, num_blocks=2)
    x = RNG.random((4, 16, 16, 3)).astype("float32")
    modality = np.eye(2, dtype="float32")[[0, 1, 1, 0]]
    sample_weight = np.array([1.0, 0.0, 2.0, 1.0], "float32")
    probabilities = keras.ops.convert_to_numpy(classifier(x))
    expected = -np.log(probabilities[np.arange(4), [0, 1, 1, 0]]) * sample_weight
    with classifier.supervise(modality, weight=0.5, sample_weight=sample_weight) as record:
        classifier(x, training=True)
        assert len(classifier.losses) == 1
        np.testing.assert_allclose(float(classifier.losses[0]), 0.5 * expected.mean(), rtol=1e-5)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(record["per_example_loss"]), expected, rtol=1e-5)
        classifier(x, training=False)
        assert not classifier.losses
        np.testing.assert_allclose(keras.ops.convert_to_numpy(record["probabilities"]), probabilities, rtol=1e-6)
        with pytest.raises(RuntimeError, match="already being supervised"):
            with classifier.supervise(modality):
                pass
    classifier(x, training=True)
    assert not classifier.losses


def test_too_few_modalities_are_rejected():
    with pytest.raises(ValueError, match="num_modalities=1"):
        ModalityClassifier(num_modalities=1)
