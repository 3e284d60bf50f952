import keras
import numpy as np
import pytest

from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "norm, norm_first, strides, num_trainable",
    [
        ("batch", True, 1, 5),  # gamma, beta, kernel, bias, alpha
        ("batch", False, 2, 4),  # no conv bias in front of a norm
        ("instance", True, 2, 5),
        ("instance", False, 1, 4),
        (None, True, 1, 3),
    ],
)
def test_layer_basics(run_layer_test, norm, norm_first, strides, num_trainable):
    run_layer_test(
        PreNormConvBlock,
        {"filters": 4, "kernel_size": 3, "strides": strides, "norm": norm, "norm_first": norm_first},
        RNG.normal(size=(2, 16, 16, 3)).astype("float32"),
        (2, 16 // strides, 16 // strides, 4),
        num_trainable,
    )


def test_prelu_has_one_slope_per_channel():
    block = PreNormConvBlock(6)
    block.build((None, 8, 8, 2))
    assert tuple(block.activation_layer.alpha.shape) == (1, 1, 6)


def test_pre_norm_normalizes_the_input_channels_post_norm_the_output():
    pre, post = PreNormConvBlock(6, norm="batch"), PreNormConvBlock(6, norm="batch", norm_first=False)
    pre.build((None, 8, 8, 2))
    post.build((None, 8, 8, 2))
    assert tuple(pre.norm_layer.gamma.shape) == (2,)
    assert tuple(post.norm_layer.gamma.shape) == (6,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 0}, "filters=0"),
        ({"filters": 4, "norm": "layer"}, "norm='layer'"),
        ({"filters": 4, "kernel_size": 0}, "kernel_size=0"),
        ({"filters": 4, "strides": -1}, "strides=-1"),
    ],
)
def test_invalid_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreNormConvBlock(**kwargs)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_pre_norm_output_ignores_per_channel_affine_changes_of_its_input(norm):
    """The property the paper relies on: whatever scale and offset a modality gives each input channel,
    the pre-norm block (in training mode) sees the same standardized input; the post-norm block does not."""
    x = RNG.normal(size=(4, 12, 12, 3)).astype("float32")
    # CT-like offsets and MR-like arbitrary scales, kept small enough that float32 round-off stays < 1e-4.
    scale = np.array([0.5, 7.0, 30.0], "float32")
    offset = np.array([-10.0, 3.0, 40.0], "float32")
    shifted = x * scale + offset
    pre = PreNormConvBlock(5, norm=norm, norm_first=True)
    post = PreNormConvBlock(5, norm=norm, norm_first=False)
    for block in (pre, post):
        block.build(x.shape)
    # The invariance is exact as epsilon -> 0; the default epsilon would blur it for small-scale channels.
    for block in (pre, post):
        block.norm_layer.epsilon = 1e-9

    def run(block, data):
        return keras.ops.convert_to_numpy(block(data, training=True))

    np.testing.assert_allclose(run(pre, x), run(pre, shifted), rtol=1e-3, atol=1e-3)
    assert np.abs(run(post, x) - run(post, shifted)).max() > 0.1
