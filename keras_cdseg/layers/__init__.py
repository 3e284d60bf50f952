"""Keras layers of keras_cdseg (importing this package registers them for `.keras` loading)."""

from keras_cdseg.layers.conditional_discriminator import ConditionalDiscriminator
from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock

__all__ = ["ConditionalDiscriminator", "PreNormConvBlock"]
