import numpy as np
import pytest

from keras_cdseg.models.segmenter import build_segmenter, level_filters


def test_paper_preset_matches_the_reference_layout():
    assert level_filters(32, 5, 8) == [32, 64, 128, 256, 256, 256]
    model = build_segmenter((64, 64, 3), num_classes=2, preset="paper")
    stem = model.get_layer("stem")
    assert stem.kernel_size == 11 and stem.norm == "instance"
    downs = [model.get_layer(f"down{i}") for i in range(1, 6)]
    assert [b.filters for b in downs] == [64, 128, 256, 256, 256]
    assert all(b.strides == 2 and b.kernel_size == 5 and b.norm_first for b in downs)
    assert model.output_shape == (None, 64, 64, 2)


@pytest.mark.parametrize(
    "preset, norm, norm_order, num_params",
    [
        # By hand: stem (IN 10 + 11x11 conv 2424 + PReLU 4) 2438; down1 (BN 16 + 808 + 8) 832;
        # down2 (32 + 3216 + 16) 3264; up1 (64 + 3208 + 8) 3280; up0 (32 + 804 + 4) 840; logits 15.
        ("paper", "batch", "pre", 10669),
        ("paper", "batch", "post", 10633),
        ("paper", "instance", "pre", 10597),
        ("unet", None, "pre", 7723),
        ("unet", "instance", "post", 7815),
    ],
)
def test_variants_build_and_output_probabilities(preset, norm, norm_order, num_params):
    model = build_segmenter(
        (32, 32, 5), num_classes=3, preset=preset, base_filters=4, depth=2, norm=norm, norm_order=norm_order
    )
    assert model.count_params() == num_params
    probabilities = model.predict(np.random.default_rng(0).random((2, 32, 32, 5), dtype="float32"), verbose=0)
    assert probabilities.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_norm_order_switches_every_block():
    pre = build_segmenter((32, 32, 3), base_filters=4, depth=2, norm_order="pre")
    post = build_segmenter((32, 32, 3), base_filters=4, depth=2, norm_order="post")
    assert pre.get_layer("down1").norm_first and not post.get_layer("down1").norm_first
    assert not post.get_layer("up0").norm_first


def test_input_must_be_divisible_by_the_down_sampling_factor():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 4"):
        build_segmenter((30, 32, 3), base_filters=4, depth=2)


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match="preset='vnet'"):
        build_segmenter((32, 32, 3), preset="vnet")
