import keras
from keras import ops

from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock


@keras.saving.register_keras_serializable(package="keras_cdseg")
class ConditionalConvBlock(PreNormConvBlock):
    """`PreNormConvBlock` whose normalized responses are modulated by a condition vector (FiLM).

    The condition `c` (e.g. a modality classifier's probabilities, `[B, M]`) selects a per-channel scale
    and shift applied right after the normalization:

        pre-norm  (norm_first=True):   -- Norm -- FiLM(c) -- Conv -- PReLU --
        post-norm (norm_first=False):  -- Conv -- Norm -- FiLM(c) -- PReLU --

        FiLM(c)(z) = z ⊙ (1 + c Γ) + c B,      Γ, B ∈ R^{M × C}, zero at initialization

    With a one-hot `c` this is one learned affine per modality (conditional normalization); with soft
    probabilities the affines are mixed. Zero initialization makes the fresh block identical to its
    `PreNormConvBlock`, so conditioning starts as a no-op and is learned only where it helps. Without a
    norm (`norm=None`) the modulation sits where the norm would be.

    Args:
        filters: int. Number of output channels.
        kernel_size: int. Square convolution kernel size. Defaults to `3`.
        strides: int. Convolution stride. Defaults to `1`.
        norm: str or None. `"batch"`, `"instance"` or `None`. Defaults to `"batch"`.
        norm_first: bool. `True` for pre-norm, `False` for post-norm. Defaults to `True`.
        activation: str or None. `"prelu"`, any Keras activation name, or `None`. Defaults to `"prelu"`.
        synchronized: bool. Synchronized BatchNorm across replicas. Defaults to `False`.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Call arguments:
        inputs: a tuple `(x, condition)` of `[B, H, W, C]` features and a `[B, M]` condition vector.

    Example:
    >>> import numpy as np
    >>> block = ConditionalConvBlock(8, strides=2, norm="instance")
    >>> x, c = np.zeros((2, 32, 32, 3), "float32"), np.eye(2, dtype="float32")
    >>> tuple(block((x, c)).shape)
    (2, 16, 16, 8)

    Reference:
    - [Perez et al., FiLM: Visual Reasoning with a General Conditioning Layer](https://arxiv.org/abs/1709.07871)
    - [Valindria et al., Multi-Modal Learning from Unpaired Images: Application to Multi-Organ
      Segmentation in CT and MRI](https://doi.org/10.1109/WACV.2018.00066)
    """

    def build(self, input_shape):
        x_shape, condition_shape = (tuple(s) for s in input_shape)
        super().build(x_shape)
        channels = x_shape[-1] if self.norm_first else self.filters
        # One row per condition entry: [scale offsets | shifts] for every modulated channel.
        self.modulation = self.add_weight(
            shape=(condition_shape[-1], 2 * channels), initializer="zeros", name="modulation"
        )

    def _modulate(self, x, condition):
        scale, shift = ops.split(ops.matmul(condition, self.modulation), 2, axis=-1)
        return x * (1.0 + scale[:, None, None, :]) + shift[:, None, None, :]

    def call(self, inputs, training=None):
        x, condition = inputs
        condition = ops.cast(condition, self.compute_dtype)
        if self.norm_first:
            if self.norm_layer is not None:
                x = self.norm_layer(x, training=training)
            x = self.conv(self._modulate(x, condition))
        else:
            x = self.conv(x)
            if self.norm_layer is not None:
                x = self.norm_layer(x, training=training)
            x = self._modulate(x, condition)
        if self.activation_layer is not None:
            x = self.activation_layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(tuple(input_shape[0]))
