import keras
import numpy as np
import pytest

from keras_cdseg.analysis import responses
from keras_cdseg.analysis.sparsity import compute_sparsity, count_positive_responses, summarize_sparsity
from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock
from keras_cdseg.models.conditional_segmenter import build_conditional_segmenter

RNG = np.random.default_rng(9)


def hand_built_generator():
    """Two 1x1 blocks with known responses (PReLU slopes start at 0, so negatives become exactly 0):
    `gate`: channel 0 = x − 0.5 (passes where x > 0.5), channel 1 = +1 everywhere (always passes);
    `closed`: zero kernel, bias −1 (never passes)."""
    inputs = keras.Input((8, 8, 1), name="slices")
    gate = PreNormConvBlock(2, kernel_size=1, norm=None, name="gate")
    closed = PreNormConvBlock(3, kernel_size=1, norm=None, name="closed")
    model = keras.Model(inputs, closed(gate(inputs)))
    gate.conv.set_weights([np.array([[[[1.0, 0.0]]]], "float32"), np.array([-0.5, 1.0], "float32")])
    closed.conv.set_weights([np.zeros((1, 1, 2, 3), "float32"), np.full(3, -1.0, "float32")])
    return model


def test_sparsity_of_known_responses_is_exact():
    ct = RNG.uniform(0.6, 1.0, size=(5, 8, 8, 1)).astype("float32")  # channel 0 always passes
    mr = RNG.uniform(0.0, 0.4, size=(3, 8, 8, 1)).astype("float32")  # channel 0 never passes
    result = compute_sparsity(hand_built_generator(), {"CT": ct, "MR": mr}, batch_size=2)
    assert result["blocks"] == ["gate", "closed"]
    ct_summary, mr_summary = result["per_modality"]["CT"], result["per_modality"]["MR"]
    assert ct_summary["per_block"] == {"gate": 1.0, "closed": 0.0}
    assert mr_summary["per_block"] == {"gate": 0.5, "closed": 0.0}
    # Pooled over responses: 2 gate channels and 3 closed ones per pixel.
    assert ct_summary["overall"] == pytest.approx(2 / 5)
    assert mr_summary["overall"] == pytest.approx(1 / 5)
    assert ct_summary["mean_over_blocks"] == 0.5 and mr_summary["mean_over_blocks"] == 0.25
    assert (ct_summary["num_slices"], mr_summary["num_slices"]) == (5, 3)
    assert ct_summary["num_responses"] == 5 * 64 * 5
    assert result["all"]["per_block"]["gate"] == pytest.approx((5 * 2 + 3 * 1) / (8 * 2))
    assert result["all"]["num_slices"] == 8


def test_iterables_of_batches_give_the_same_counts_as_one_array():
    generator = hand_built_generator()
    slices = RNG.random((7, 8, 8, 1)).astype("float32")
    whole = compute_sparsity(generator, {"CT": slices})
    chunked = compute_sparsity(generator, {"CT": iter([slices[:3], slices[3:3], slices[3:]])}, batch_size=2)
    assert whole == chunked
    assert 0 < whole["all"]["per_block"]["gate"] < 1


def test_summaries_of_hand_counts():
    counts = count_positive_responses({"a": np.array([1.0, -1.0, 0.0, 2.0]), "b": np.zeros((2, 3))})
    assert counts == {"a": (2, 4), "b": (0, 6)}
    summary = summarize_sparsity({**counts, "empty": (0, 0)})
    assert summary == {
        "per_block": {"a": 0.5, "b": 0.0, "empty": None},
        "overall": 0.2,
        "mean_over_blocks": 0.25,
        "num_responses": 10,
    }
    assert summarize_sparsity({})["overall"] is None


def test_response_blocks_are_the_segmentation_path_only():
    generator = build_conditional_segmenter(
        (32, 32, 3), base_filters=4, depth=2, classifier_filters=4, classifier_blocks=2
    )
    assert responses.find_response_blocks(generator) == ["stem", "down1", "down2", "up1", "up0"]
    with pytest.raises(ValueError, match="no PreNormConvBlock"):
        responses.find_response_blocks(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_bad_slices_are_rejected():
    with pytest.raises(ValueError, match="\\[N, H, W, C\\]"):
        list(responses.iter_batches(np.zeros((8, 8, 1)), 2))
    with pytest.raises(ValueError, match="batch_size=0"):
        list(responses.iter_batches(np.zeros((1, 8, 8, 1)), 0))
