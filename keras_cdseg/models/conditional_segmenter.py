"""Cond-DCN: a segmenter whose blocks are conditioned on its own modality prediction (a Table 2 baseline)."""

import keras

from keras_cdseg.layers.conditional_conv_block import ConditionalConvBlock
from keras_cdseg.layers.modality_classifier import ModalityClassifier
from keras_cdseg.models import segmenter

CLASSIFIER_NAME = "modality_classifier"


def build_conditional_segmenter(
    input_shape=(256, 256, 3),
    num_classes=2,
    preset="paper",
    base_filters=None,
    depth=None,
    norm="batch",
    norm_order="pre",
    synchronized=False,
    num_modalities=2,
    classifier_filters=8,
    classifier_blocks=3,
    name="conditional_segmenter",
):
    """Builds Cond-DCN: `build_segmenter`'s network with every block conditioned on a modality classifier.

        slices ─┬─ ModalityClassifier ─ p(modality) [B, M] ─┐ (to every block)
                └─ U-Net of ConditionalConvBlock(·, p) ─────┴─ softmax "probabilities"

    The classifier (layer `"modality_classifier"`) sees only the slices, so the model needs no modality
    label at inference; `ConditionalDomainModel` supervises it with labels during training. Each block
    applies a FiLM scale/shift chosen by the probabilities right after its norm (`ConditionalConvBlock`).
    The backbone is exactly `build_segmenter`'s (same presets and layer names); in the `paper` preset the
    per-image input-normalization stem stays unconditioned, like it stays pre-norm in every variant.

    Args:
        input_shape: tuple. `(H, W, 2T+1)`; H and W divisible by `2**depth`. Defaults to `(256, 256, 3)`.
        num_classes: int. Softmax output classes including background. Defaults to `2`.
        preset: str. `"paper"` or `"unet"`. Defaults to `"paper"`.
        base_filters: int or None. Filters of the first level; None takes the preset's.
        depth: int or None. Number of down-sampling steps; None takes the preset's.
        norm: str or None. `"batch"`, `"instance"` or `None`. Defaults to `"batch"`.
        norm_order: str. `"pre"` or `"post"`. Defaults to `"pre"`.
        synchronized: bool. Synchronized BatchNorm (multi-replica training). Defaults to `False`.
        num_modalities: int. Modalities the classifier distinguishes. Defaults to `2`.
        classifier_filters: int. Filters of each classifier convolution. Defaults to `8`.
        classifier_blocks: int. Stride-2 blocks of the classifier. Defaults to `3`.
        name: str. Model name. Defaults to `"conditional_segmenter"`.

    Returns:
        A `keras.Model` mapping `[B, H, W, 2T+1]` to float32 softmax probabilities `[B, H, W, num_classes]`.

    Example:
    >>> model = build_conditional_segmenter((32, 32, 3), base_filters=4, depth=2)
    >>> model.output_shape, model.get_layer("modality_classifier").num_modalities
    ((None, 32, 32, 2), 2)

    Reference:
    - [Valindria et al., Multi-Modal Learning from Unpaired Images: Application to Multi-Organ
      Segmentation in CT and MRI](https://doi.org/10.1109/WACV.2018.00066)
    """
    filters, kernel_size = segmenter.resolve_levels(input_shape, preset, base_filters, depth, norm_order)

    inputs = keras.Input(shape=input_shape, name="slices")
    modality = ModalityClassifier(
        num_modalities, filters=classifier_filters, num_blocks=classifier_blocks, name=CLASSIFIER_NAME
    )(inputs)

    def block(num_filters, kernel_size, block_name, strides=1):
        layer = ConditionalConvBlock(
            num_filters,
            kernel_size=kernel_size,
            strides=strides,
            norm=norm,
            norm_first=norm_order == "pre",
            synchronized=synchronized,
            name=block_name,
        )
        return lambda x: layer((x, modality))

    # The same bodies as build_segmenter, with conditioned blocks: the only difference is the conditioning.
    body = segmenter._paper_body if preset == "paper" else segmenter._unet_body
    return segmenter.softmax_head(inputs, body(inputs, filters, kernel_size, block), num_classes, name)
