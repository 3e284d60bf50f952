"""Att-DCN: the segmenter with an attention gate on every skip connection (a baseline of Table 2)."""

import keras

from keras_cdseg.layers.attention_gate import AttentionGate
from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock
from keras_cdseg.models.segmenter import PRESETS, level_filters


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
    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {sorted(PRESETS)}. Received: preset={preset!r}")
    if norm_order not in ("pre", "post"):
        raise ValueError(f"`norm_order` must be 'pre' or 'post'. Received: norm_order={norm_order!r}")
    settings = dict(PRESETS[preset])
    settings["base_filters"] = base_filters if base_filters is not None else settings["base_filters"]
    settings["depth"] = depth if depth is not None else settings["depth"]
    factor = 2 ** settings["depth"]
    if any(size is not None and size % factor for size in input_shape[:2]):
        raise ValueError(
            f"Input height and width must be divisible by 2**depth = {factor}. Received: input_shape={input_shape}"
        )
    filters = level_filters(settings["base_filters"], settings["depth"], settings["max_filter_multiplier"])
    kernel_size = settings["kernel_size"]

    def block(num_filters, block_name, strides=1, size=kernel_size):
        return PreNormConvBlock(
            num_filters,
            kernel_size=size,
            strides=strides,
            norm=norm,
            norm_first=norm_order == "pre",
            synchronized=synchronized,
            name=block_name,
        )

    def gated_skip(level, skip, gating):
        # Half the skip's channels for the attention space, as in Oktay et al.
        return AttentionGate(max(1, filters[level] // 2), strides=2, name=f"up{level}_gate")((skip, gating))

    inputs = keras.Input(shape=input_shape, name="slices")
    if preset == "paper":
        features = _paper_body(inputs, filters, block, gated_skip)
    else:
        features = _unet_body(inputs, filters, block, gated_skip)
    logits = keras.layers.Conv2D(num_classes, 1, name="logits")(features)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=name)


def _paper_body(inputs, filters, block, gated_skip):
    # The stem is the preset's per-image input normalization, identical in every variant (see segmenter.py).
    stem = PreNormConvBlock(filters[0], kernel_size=11, norm="instance", norm_first=True, name="stem")
    skips = [stem(inputs)]
    x = skips[0]
    for level in range(1, len(filters)):
        x = block(filters[level], f"down{level}", strides=2)(x)
        skips.append(x)
    for level in reversed(range(len(filters) - 1)):
        skip = gated_skip(level, skips[level], x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}_resize")(x)
        x = block(filters[level], f"up{level}")(x)
        x = keras.layers.Add(name=f"up{level}_skip")([x, skip])
    return x


def _unet_body(inputs, filters, block, gated_skip):
    skips = []
    x = inputs
    for level in range(len(filters) - 1):
        x = block(filters[level], f"down{level}_a")(x)
        x = block(filters[level], f"down{level}_b")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = block(filters[-1], "bottleneck_a")(x)
    x = block(filters[-1], "bottleneck_b")(x)
    for level in reversed(range(len(filters) - 1)):
        skip = gated_skip(level, skips[level], x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}_resize")(x)
        x = block(filters[level], f"up{level}_project")(x)
        x = keras.layers.Add(name=f"up{level}_skip")([x, skip])
        x = block(filters[level], f"up{level}_a")(x)
        x = block(filters[level], f"up{level}_b")(x)
    return x
