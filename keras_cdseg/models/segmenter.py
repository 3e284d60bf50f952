"""Builders for the generator (a 2D U-Net of `PreNormConvBlock`s) and its conditional discriminator."""

import keras

from keras_cdseg.layers.conditional_discriminator import ConditionalDiscriminator
from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock

# `paper`: the authors' reference layout. A learnable per-image input normalization and an 11×11 conv,
# one 5×5 stride-2 block per level (32/64/128/256/256 filters), bilinear up-sampling with additive skips.
# `unet`: the classic U-Net (two 3×3 blocks per level, max pooling, 32 base filters), with the same
# pre-/post-norm blocks and additive skips so both presets ablate the same way.
PRESETS = {
    "paper": {"base_filters": 32, "depth": 5, "kernel_size": 5, "max_filter_multiplier": 8},
    "unet": {"base_filters": 32, "depth": 4, "kernel_size": 3, "max_filter_multiplier": 16},
}


def level_filters(base_filters, depth, max_filter_multiplier):
    """Filters at each resolution level: doubling per level, capped at `max_filter_multiplier × base`."""
    return [base_filters * min(2**i, max_filter_multiplier) for i in range(depth + 1)]


def build_segmenter(
    input_shape=(256, 256, 3),
    num_classes=2,
    preset="paper",
    base_filters=None,
    depth=None,
    norm="batch",
    norm_order="pre",
    synchronized=False,
    name="segmenter",
):
    """Builds the segmentation generator as a functional `keras.Model`.

    Args:
        input_shape: tuple. `(H, W, 2T+1)`: prepared slices with T neighbours on each side as channels.
            H and W must be divisible by `2**depth`. Defaults to `(256, 256, 3)`.
        num_classes: int. Softmax output classes including background. Defaults to `2`.
        preset: str. `"paper"` or `"unet"` (see `PRESETS`). Defaults to `"paper"`.
        base_filters: int or None. Filters of the first level; None takes the preset's.
        depth: int or None. Number of down-sampling steps; None takes the preset's.
        norm: str or None. `"batch"`, `"instance"` or `None`. Defaults to `"batch"`.
        norm_order: str. `"pre"` (norm → conv → PReLU, the paper) or `"post"` (conv → norm → PReLU).
        synchronized: bool. Synchronized BatchNorm (multi-replica training). Defaults to `False`.
        name: str. Model name. Defaults to `"segmenter"`.

    Returns:
        A `keras.Model` mapping `[B, H, W, 2T+1]` to float32 softmax probabilities `[B, H, W, num_classes]`.

    Example:
    >>> model = build_segmenter((32, 32, 3), num_classes=2, base_filters=4, depth=2)
    >>> model.output_shape
    (None, 32, 32, 2)
    """
    filters, kernel_size = resolve_levels(input_shape, preset, base_filters, depth, norm_order)
    block = block_factory(norm, norm_order, synchronized)
    inputs = keras.Input(shape=input_shape, name="slices")
    body = _paper_body if preset == "paper" else _unet_body
    return softmax_head(inputs, body(inputs, filters, kernel_size, block), num_classes, name)


def block_factory(norm, norm_order, synchronized):
    """`block(num_filters, kernel_size, name, strides=1)` making the `PreNormConvBlock`s of every level."""

    def block(num_filters, kernel_size, block_name, strides=1):
        return PreNormConvBlock(
            num_filters,
            kernel_size=kernel_size,
            strides=strides,
            norm=norm,
            norm_first=norm_order == "pre",
            synchronized=synchronized,
            name=block_name,
        )

    return block


def resolve_levels(input_shape, preset, base_filters, depth, norm_order):
    """Validated `(filters per level, kernel size)` of a preset with optional overrides (shared by every
    generator builder, so Att-DCN and Cond-DCN differ from the DCN only where they should)."""
    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {sorted(PRESETS)}. Received: preset={preset!r}")
    if norm_order not in ("pre", "post"):
        raise ValueError(f"`norm_order` must be 'pre' or 'post'. Received: norm_order={norm_order!r}")
    settings = dict(PRESETS[preset])
    if base_filters is not None:
        settings["base_filters"] = base_filters
    if depth is not None:
        settings["depth"] = depth
    factor = 2 ** settings["depth"]
    for size in input_shape[:2]:
        if size is not None and size % factor:
            raise ValueError(
                f"Input height and width must be divisible by 2**depth = {factor}. Received: input_shape={input_shape}"
            )
    filters = level_filters(settings["base_filters"], settings["depth"], settings["max_filter_multiplier"])
    return filters, settings["kernel_size"]


def softmax_head(inputs, features, num_classes, name):
    """1×1 logits and a float32 softmax named "probabilities" (stable cross-entropy under mixed precision)."""
    logits = keras.layers.Conv2D(num_classes, 1, name="logits")(features)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=name)


def _skip(skip_transform, level, skip, coarse):
    return skip if skip_transform is None else skip_transform(level, skip, coarse)


def _paper_body(inputs, filters, kernel_size, block, skip_transform=None):
    # The stem's per-image normalization is the reference model's learnable input normalization; it is
    # part of the preset, not of the norm ablation, so it stays pre-norm instance norm in every variant.
    stem = PreNormConvBlock(filters[0], kernel_size=11, norm="instance", norm_first=True, name="stem")
    skips = [stem(inputs)]
    x = skips[0]
    for level in range(1, len(filters)):
        x = block(filters[level], kernel_size, f"down{level}", strides=2)(x)
        skips.append(x)
    for level in reversed(range(len(filters) - 1)):
        skip = _skip(skip_transform, level, skips[level], x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}_resize")(x)
        x = block(filters[level], kernel_size, f"up{level}")(x)
        x = keras.layers.Add(name=f"up{level}_skip")([x, skip])
    return x


def _unet_body(inputs, filters, kernel_size, block, skip_transform=None):
    skips = []
    x = inputs
    for level in range(len(filters) - 1):
        x = block(filters[level], kernel_size, f"down{level}_a")(x)
        x = block(filters[level], kernel_size, f"down{level}_b")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = block(filters[-1], kernel_size, "bottleneck_a")(x)
    x = block(filters[-1], kernel_size, "bottleneck_b")(x)
    for level in reversed(range(len(filters) - 1)):
        skip = _skip(skip_transform, level, skips[level], x)
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}_resize")(x)
        x = block(filters[level], kernel_size, f"up{level}_project")(x)
        x = keras.layers.Add(name=f"up{level}_skip")([x, skip])
        x = block(filters[level], kernel_size, f"up{level}_a")(x)
        x = block(filters[level], kernel_size, f"up{level}_b")(x)
    return x


def build_discriminator(norm="batch", synchronized=False, filters=32, num_blocks=5, dense_units=256):
    """The conditional discriminator of the authors' reference code (see `ConditionalDiscriminator`)."""
    return ConditionalDiscriminator(
        filters=filters,
        num_blocks=num_blocks,
        norm=norm,
        dense_units=dense_units,
        synchronized=synchronized,
        name="discriminator",
    )
