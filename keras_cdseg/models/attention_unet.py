"""Att-DCN: the segmenter with an attention gate on every skip connection (a baseline of Table 2)."""

import keras

from keras_cdseg.layers.attention_gate import AttentionGate
from keras_cdseg.models.segmenter import _paper_body, _unet_body, block_factory, resolve_levels, softmax_head


def build_attention_segmenter(
    input_shape=(256, 256, 3),
    num_classes=2,
    preset="paper",
    base_filters=None,
    depth=None,
    norm="batch",
    norm_order="pre",
    synchronized=False,
    name="attention_segmenter",
):
    """Builds Att-DCN: `build_segmenter`'s network with Attention U-Net gates on the skips.

    Every skip connection passes through an `AttentionGate` whose gating signal is the decoder's features
    one level coarser (before they are up-sampled), so the decoder decides which encoder responses to
    reuse. Everything else — presets, blocks, additive skips, the float32 softmax named `"probabilities"`
    and the input named `"slices"` — is `build_segmenter`'s, so `CrossDomainModel` trains it unchanged
    (with or without the adversarial loss) and the inference/export code serves it unchanged.

    Args:
        input_shape: tuple. `(H, W, 2T+1)`; H and W divisible by `2**depth`. Defaults to `(256, 256, 3)`.
        num_classes: int. Softmax output classes including background. Defaults to `2`.
        preset: str. `"paper"` or `"unet"` (see `segmenter.PRESETS`). Defaults to `"paper"`.
        base_filters: int or None. Filters of the first level; None takes the preset's.
        depth: int or None. Number of down-sampling steps; None takes the preset's.
        norm: str or None. `"batch"`, `"instance"` or `None`. Defaults to `"batch"`.
        norm_order: str. `"pre"` (norm → conv → PReLU) or `"post"` (conv → norm → PReLU). Defaults to `"pre"`.
        synchronized: bool. Synchronized BatchNorm (multi-replica training). Defaults to `False`.
        name: str. Model name. Defaults to `"attention_segmenter"`.

    Returns:
        A `keras.Model` mapping `[B, H, W, 2T+1]` to float32 softmax probabilities `[B, H, W, num_classes]`.

    Example:
    >>> model = build_attention_segmenter((32, 32, 3), num_classes=2, base_filters=4, depth=2)
    >>> model.output_shape
    (None, 32, 32, 2)

    Reference:
    - [Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas](https://arxiv.org/abs/1804.03999)
    """
    filters, kernel_size = resolve_levels(input_shape, preset, base_filters, depth, norm_order)

    block = block_factory(norm, norm_order, synchronized)

    def gated_skip(level, skip, gating):
        # Half the skip's channels for the attention space, as in Oktay et al.
        return AttentionGate(max(1, filters[level] // 2), strides=2, name=f"up{level}_gate")((skip, gating))

    inputs = keras.Input(shape=input_shape, name="slices")
    body = _paper_body if preset == "paper" else _unet_body
    return softmax_head(inputs, body(inputs, filters, kernel_size, block, skip_transform=gated_skip), num_classes, name)
