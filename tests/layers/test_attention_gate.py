import keras
import numpy as np
import pytest

from keras_cdseg.layers.attention_gate import AttentionGate

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("strides, gating_size", [(2, 8), (1, 16)])
def test_layer_basics(run_layer_test, strides, gating_size):
    # θ_x kernel (no bias), φ_g kernel + bias, ψ kernel + bias.
    run_layer_test(
        AttentionGate,
        {"filters": 3, "strides": strides},
        (
            RNG.normal(size=(2, 16, 16, 4)).astype("float32"),
            RNG.normal(size=(2, gating_size, gating_size, 6)).astype("float32"),
        ),
        (2, 16, 16, 4),
        5,
    )


def test_coefficients_scale_the_skip_between_zero_and_one():
    x = RNG.normal(size=(2, 16, 16, 4)).astype("float32")
    g = RNG.normal(size=(2, 8, 8, 6)).astype("float32")
    gate = AttentionGate(3)
    out = keras.ops.convert_to_numpy(gate((x, g)))
    # Per pixel the output is α·x with one α ∈ (0, 1) shared by every channel.
    ratio = out / x
    np.testing.assert_allclose(ratio, ratio[..., :1].repeat(4, axis=-1), rtol=1e-4, atol=1e-5)
    assert (ratio > 0).all() and (ratio < 1).all()
    # A saturated ψ opens (α → 1) or closes (α → 0) the gate everywhere.
    gate.coefficients.bias.assign([50.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gate((x * 0, g * 0))), 0.0)
    gate.coefficients.kernel.assign(np.zeros_like(gate.coefficients.kernel.numpy()))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gate((x, g))), x, rtol=1e-6)
    gate.coefficients.bias.assign([-50.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gate((x, g))), 0.0, atol=1e-12)


def test_mismatched_resolutions_are_rejected():
    gate = AttentionGate(3, strides=2)
    with pytest.raises(ValueError, match="strides=2"):
        gate.build(((None, 16, 16, 4), (None, 16, 16, 6)))


@pytest.mark.parametrize(
    "kwargs, message", [({"filters": 0}, "filters=0"), ({"filters": 2, "strides": 0}, "strides=0")]
)
def test_invalid_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionGate(**kwargs)
