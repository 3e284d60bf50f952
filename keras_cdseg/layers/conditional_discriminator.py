import keras

from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock


@keras.saving.register_keras_serializable(package="keras_cdseg")
class ConditionalDiscriminator(keras.layers.Layer):
    """Conditional adversarial network (CAN) critic for segmentation maps.

    Scores whether a label map is a real annotation of the image it is paired with:

        concat(x, y) -- [Conv(s=2) -- Norm -- PReLU] × num_blocks -- Dense -- PReLU -- Dense(1) --> logit

    `y` is the one-hot reference ("real") or the generator's softmax ("fake"). Conditioning on the image
    `x` lets the critic judge shape *given the anatomy*, which is what carries across modalities. The
    layout follows the authors' reference code: five stride-2 convolutions with 32 filters, BatchNorm and
    PReLU, then a 256-unit dense layer and a single logit (DCGAN sigmoid cross-entropy is applied to it).

    Args:
        filters: int. Filters of every convolution. Defaults to `32`.
        num_blocks: int. Number of stride-2 convolution blocks. Defaults to `5`.
        kernel_size: int. Convolution kernel size. Defaults to `5`.
        norm: str or None. `"batch"`, `"instance"` or `None`. Defaults to `"batch"`.
        dense_units: int. Width of the hidden dense layer. Defaults to `256`.
        synchronized: bool. Synchronized BatchNorm across replicas. Defaults to `False`.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Call arguments:
        inputs: a tuple `(x, y)` of `[B, H, W, Cx]` and `[B, H, W, Cy]` tensors, or one tensor already
            concatenated on the channel axis.

    Example:
    >>> import numpy as np
    >>> critic = ConditionalDiscriminator(filters=8, num_blocks=3, dense_units=16)
    >>> x, y = np.zeros((2, 32, 32, 3), "float32"), np.zeros((2, 32, 32, 2), "float32")
    >>> tuple(critic((x, y)).shape)
    (2, 1)

    Reference:
    - [Baydar et al., Cross-Domain Segmentation with Adversarial Loss and Covariate Shift for Biomedical
      Imaging](https://arxiv.org/abs/2006.04390)
    - [Luc et al., Semantic Segmentation using Adversarial Networks](https://arxiv.org/abs/1611.08408)
    """

    def __init__(
        self,
        filters=32,
        num_blocks=5,
        kernel_size=5,
        norm="batch",
        dense_units=256,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"`num_blocks` must be a positive int. Received: num_blocks={num_blocks}")
        if not isinstance(dense_units, int) or dense_units < 1:
            raise ValueError(f"`dense_units` must be a positive int. Received: dense_units={dense_units}")
        self.filters = filters
        self.num_blocks = num_blocks
        self.kernel_size = kernel_size
        self.norm = norm
        self.dense_units = dense_units
        self.synchronized = synchronized

        # Blocks are attributes, not a list: Keras 3 tracks lists of layers for its own saving, but
        # tf.train.Checkpoint only follows attributes, and would silently skip the blocks' BN statistics.
        for i in range(num_blocks):
            block = PreNormConvBlock(
                filters,
                kernel_size=kernel_size,
                strides=2,
                norm=norm,
                norm_first=False,
                synchronized=synchronized,
                dtype=self.dtype_policy,
                name=f"{self.name}_block{i}",
            )
            setattr(self, f"block{i}", block)
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy, name=f"{self.name}_flatten")
        self.hidden = keras.layers.Dense(dense_units, dtype=self.dtype_policy, name=f"{self.name}_dense")
        self.hidden_activation = keras.layers.PReLU(dtype=self.dtype_policy, name=f"{self.name}_dense_prelu")
        # The logit stays float32 under mixed precision: it feeds a sigmoid cross-entropy.
        self.logit = keras.layers.Dense(1, dtype="float32", name=f"{self.name}_logit")

    @property
    def blocks(self):
        return [getattr(self, f"block{i}") for i in range(self.num_blocks)]

    def _concat(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, y = inputs
            x = keras.ops.cast(x, self.compute_dtype)
            y = keras.ops.cast(y, self.compute_dtype)
            return keras.ops.concatenate([x, y], axis=-1)
        return inputs

    @staticmethod
    def _concat_shape(input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            x_shape, y_shape = input_shape
            channels = None if x_shape[-1] is None or y_shape[-1] is None else x_shape[-1] + y_shape[-1]
            return tuple(x_shape[:-1]) + (channels,)
        return tuple(input_shape)

    def build(self, input_shape):
        shape = self._concat_shape(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.flatten.build(shape)
        shape = self.flatten.compute_output_shape(shape)
        self.hidden.build(shape)
        shape = self.hidden.compute_output_shape(shape)
        self.hidden_activation.build(shape)
        self.logit.build(shape)

    def call(self, inputs, training=None):
        x = self._concat(inputs)
        for block in self.blocks:
            x = block(x, training=training)
        x = self.hidden_activation(self.hidden(self.flatten(x)))
        return self.logit(x)

    def compute_output_shape(self, input_shape):
        return (self._concat_shape(input_shape)[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "kernel_size": self.kernel_size,
                "norm": self.norm,
                "dense_units": self.dense_units,
                "synchronized": self.synchronized,
            }
        )
        return config
