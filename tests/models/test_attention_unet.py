import keras
import numpy as np
import pytest

from keras_cdseg.layers.attention_gate import AttentionGate
from keras_cdseg.models.attention_unet import build_attention_segmenter
from keras_cdseg.models.cross_domain_model import CrossDomainModel
from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

RNG = np.random.default_rng(8)


def make_batch(num=2):
    x = RNG.random((num, 32, 32, 3), dtype="float32")
    return x, np.eye(2, dtype="float32")[(x[..., 1] > 0.6).astype(int)]


@pytest.mark.parametrize("preset", ["paper", "unet"])
def test_attention_segmenter_is_the_segmenter_plus_one_gate_per_skip(preset):
    kwargs = dict(num_classes=2, preset=preset, base_filters=4, depth=2, norm="instance", norm_order="post")
    model = build_attention_segmenter((32, 32, 3), **kwargs)
    plain = build_segmenter((32, 32, 3), **kwargs)
    gates = [layer for layer in model.layers if isinstance(layer, AttentionGate)]
    assert [g.name for g in gates] == ["up1_gate", "up0_gate"]
    assert [g.filters for g in gates] == [4, 2]  # half the skip's channels (8, 4)
    # By hand, gate on the 8-channel skip gated by 16 channels: θ 2·2·8·4 + φ 16·4+4 + ψ 4+1 = 201;
    # on the 4-channel skip gated by 8 channels: 2·2·4·2 + 8·2+2 + 2+1 = 53.
    assert model.count_params() == plain.count_params() + 201 + 53
    assert model.input.name == "slices" and model.output_shape == (None, 32, 32, 2)
    assert model.get_layer("probabilities").dtype_policy.compute_dtype == "float32"
    probabilities = model.predict(make_batch()[0], verbose=0)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_trains_with_the_adversarial_model_and_round_trips_through_keras_files(tmp_path):
    keras.utils.set_random_seed(0)
    generator = build_attention_segmenter((32, 32, 3), base_filters=4, depth=2)
    model = CrossDomainModel(generator, build_discriminator(filters=4, num_blocks=2, dense_units=8))
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=1e-3)
    before = [w.numpy().copy() for w in generator.trainable_weights]
    x, y = make_batch()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"seg_loss", "g_adv_loss", "d_loss"} <= set(logs)
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, generator.trainable_weights))
    generator.save(tmp_path / "generator.keras")
    model.save(tmp_path / "model.keras")
    expected = model.predict(x, verbose=0)
    restored = keras.saving.load_model(tmp_path / "generator.keras", safe_mode=True)
    np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-6)
    whole = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(whole.predict(x, verbose=0), expected, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"preset": "vnet"}, "preset='vnet'"),
        ({"norm_order": "mid"}, "norm_order='mid'"),
        ({"depth": 3}, "2\\*\\*depth = 8"),
    ],
)
def test_invalid_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_attention_segmenter((36, 36, 3), **{"base_filters": 4, "depth": 2, **kwargs})
