import keras
import numpy as np
import pytest

from keras_cdseg.layers.conditional_conv_block import ConditionalConvBlock
from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock

RNG = np.random.default_rng(6)


@pytest.mark.parametrize(
    "norm, norm_first, num_trainable",
    [("batch", True, 6), ("batch", False, 5), ("instance", True, 6), (None, False, 4)],  # block's + modulation
)
def test_layer_basics(run_layer_test, norm, norm_first, num_trainable):
    run_layer_test(
        ConditionalConvBlock,
        {"filters": 4, "kernel_size": 3, "strides": 2, "norm": norm, "norm_first": norm_first},
        (RNG.normal(size=(2, 16, 16, 3)).astype("float32"), np.eye(2, dtype="float32")),
        (2, 8, 8, 4),
        num_trainable,
    )


@pytest.mark.parametrize("norm_first", [True, False])
def test_fresh_block_equals_the_unconditioned_block(norm_first):
    x = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    plain = PreNormConvBlock(5, norm="instance", norm_first=norm_first)
    conditional = ConditionalConvBlock(5, norm="instance", norm_first=norm_first)
    plain.build(x.shape)
    conditional.build((x.shape, (2, 2)))
    conditional.conv.set_weights(plain.conv.get_weights())
    expected = keras.ops.convert_to_numpy(plain(x))
    out = keras.ops.convert_to_numpy(conditional((x, np.eye(2, dtype="float32"))))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_modulation_is_one_affine_per_condition_entry():
    # No norm, no activation, 1x1 identity conv: the block is exactly FiLM(c)(x).
    block = ConditionalConvBlock(2, kernel_size=1, norm=None, norm_first=False, activation=None)
    block.build(((None, 4, 4, 2), (None, 2)))
    block.conv.kernel.assign(np.eye(2, dtype="float32")[None, None])
    # rows: condition entries; columns: [scale offset ch0, ch1 | shift ch0, ch1]
    block.modulation.assign(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 3.0, -1.0]], "float32"))
    x = RNG.normal(size=(3, 4, 4, 2)).astype("float32")
    condition = np.array([[1, 0], [0, 1], [0.5, 0.5]], "float32")
    out = keras.ops.convert_to_numpy(block((x, condition)))
    np.testing.assert_allclose(out[0], x[0] * [2.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(out[1], x[1] + [3.0, -1.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[2], x[2] * [1.5, 1.0] + [1.5, -0.5], rtol=1e-6, atol=1e-6)
