"""Segmentation losses: soft Dice per example, CE + Dice by name; trained through CrossDomainModel."""

import keras
import numpy as np
import pytest

from keras_cdseg import losses


def _one_hot(labels, num_classes=3):
    return np.eye(num_classes, dtype=np.float32)[labels]


def test_soft_dice_is_zero_for_a_perfect_prediction_and_counts_classes_alike():
    labels = np.zeros((2, 16, 16), int)
    labels[0, 2:12, 2:12] = 1  # a large organ
    labels[0, 14:16, 14:16] = 2  # a small organ
    labels[1, 4:8, 4:8] = 2
    y = _one_hot(labels)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(losses.soft_dice_loss(y, y)), [0, 0], atol=1e-6)
    missed_small = y.copy()
    missed_small[0, 14:16, 14:16] = [1, 0, 0]
    missed_large = y.copy()
    missed_large[0, 2:12, 2:12] = [1, 0, 0]
    small = float(keras.ops.convert_to_numpy(losses.soft_dice_loss(y, missed_small))[0])
    large = float(keras.ops.convert_to_numpy(losses.soft_dice_loss(y, missed_large))[0])
    # Missing a 4-pixel organ costs about as much as missing a 100-pixel one; cross-entropy sees 25x less.
    assert small > 0.35 and large > 0.45
    ce_small = float(keras.ops.convert_to_numpy(losses.segmentation_cross_entropy(y, missed_small))[0])
    ce_large = float(keras.ops.convert_to_numpy(losses.segmentation_cross_entropy(y, missed_large))[0])
    assert ce_large / ce_small == pytest.approx(25, rel=0.01)


def test_absent_class_predicted_absent_costs_nothing():
    y = _one_hot(np.zeros((1, 8, 8), int))
    assert float(keras.ops.convert_to_numpy(losses.soft_dice_loss(y, y))[0]) == pytest.approx(0, abs=1e-6)


def test_segmentation_loss_by_name():
    rng = np.random.default_rng(0)
    y = _one_hot(rng.integers(0, 3, (2, 8, 8)))
    p = keras.ops.softmax(rng.normal(size=(2, 8, 8, 3)).astype(np.float32), axis=-1)
    ce = keras.ops.convert_to_numpy(losses.segmentation_loss(y, p, "ce"))
    both = keras.ops.convert_to_numpy(losses.segmentation_loss(y, p, "ce_dice"))
    dice = keras.ops.convert_to_numpy(losses.soft_dice_loss(y, p))
    np.testing.assert_allclose(both, ce + dice, rtol=1e-6)
    with pytest.raises(ValueError, match="loss"):
        losses.segmentation_loss(y, p, "dice")


def test_cross_domain_model_trains_with_ce_dice_and_keeps_it_in_its_compile_config():
    from keras_cdseg.models.cross_domain_model import CrossDomainModel
    from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 3)).astype(np.float32)
    labels = (x[..., 1] > 0.5).astype(int)
    y = np.eye(2, dtype=np.float32)[labels]
    model = CrossDomainModel(
        build_segmenter((16, 16, 3), base_filters=4, depth=2),
        build_discriminator(filters=4, num_blocks=2, dense_units=8),
        class_names=["background", "liver"],
    )
    model.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-3), seg_loss="ce_dice")
    history = model.fit(x, y, batch_size=4, epochs=15, verbose=0).history["seg_loss"]
    assert history[-1] < history[0]
    assert model.get_compile_config()["seg_loss"] == "ce_dice"
    with pytest.raises(ValueError, match="seg_loss"):
        model.compile(seg_loss="focal")
