import keras
import numpy as np
import pytest

from keras_cdseg.layers.conditional_discriminator import ConditionalDiscriminator

RNG = np.random.default_rng(1)


def _pair():
    x = RNG.random((2, 32, 32, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[(RNG.random((2, 32, 32)) > 0.5).astype(int)]
    return x, y


def test_layer_basics(run_layer_test):
    # Per post-norm block: conv kernel (no bias before the norm), gamma, beta, PReLU alpha; then dense
    # kernel + bias, its PReLU alpha, logit kernel + bias.
    run_layer_test(
        ConditionalDiscriminator,
        {"filters": 4, "num_blocks": 3, "kernel_size": 3, "norm": "batch", "dense_units": 8},
        _pair(),
        (2, 1),
        3 * 4 + 5,
    )


def test_reference_layout_has_five_stride_two_blocks_of_32_filters():
    critic = ConditionalDiscriminator()
    critic.build(((None, 256, 256, 3), (None, 256, 256, 2)))
    assert len(critic.blocks) == 5
    assert all(b.filters == 32 and b.strides == 2 for b in critic.blocks)
    assert tuple(critic.hidden.kernel.shape) == (8 * 8 * 32, 256)
    assert tuple(critic.logit.kernel.shape) == (256, 1)


def test_pair_and_concatenated_input_give_the_same_logits():
    x, y = _pair()
    critic = ConditionalDiscriminator(filters=4, num_blocks=2, dense_units=8)
    from_pair = keras.ops.convert_to_numpy(critic((x, y)))
    from_concat = keras.ops.convert_to_numpy(critic(np.concatenate([x, y], axis=-1)))
    np.testing.assert_allclose(from_pair, from_concat, rtol=1e-6)


def test_invalid_arguments_name_the_value():
    with pytest.raises(ValueError, match="num_blocks=0"):
        ConditionalDiscriminator(num_blocks=0)
