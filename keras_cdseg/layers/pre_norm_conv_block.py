import keras

NORMS = ("batch", "instance", None)


@keras.saving.register_keras_serializable(package="keras_cdseg")
class PreNormConvBlock(keras.layers.Layer):
    """Convolution block with normalization before (pre-norm) or after (post-norm) the convolution.

    Pre-norm (`norm_first=True`, the paper's block) normalizes the block's *input*:

        -- Norm -- Conv -- PReLU --     f_pre(z) = W (z − μ(z)) / σ(z)

    so the statistics are taken where modality-specific intensity distributions still live, and the
    convolution sees standardized inputs whatever the modality. Post-norm (`norm_first=False`) is the
    conventional block, kept for ablations:

        -- Conv -- Norm -- PReLU --

    Args:
        filters: int. Number of output channels.
        kernel_size: int. Square convolution kernel size. Defaults to `3`.
        strides: int. Convolution stride. Defaults to `1`.
        norm: str or None. `"batch"` (BatchNorm), `"instance"` (per-image, per-channel normalization,
            `GroupNormalization(groups=-1)`) or `None`. Defaults to `"batch"`.
        norm_first: bool. `True` for pre-norm (norm → conv → activation), `False` for post-norm
            (conv → norm → activation). Defaults to `True`.
        activation: str or None. `"prelu"` (one learnable slope per channel, shared over the spatial
            axes), any Keras activation name, or `None`. Defaults to `"prelu"`.
        synchronized: bool. Synchronize BatchNorm statistics across replicas (set it when training with
            more than one replica). Ignored unless `norm="batch"`, and on backends other than TensorFlow,
            where a data-parallel step is one program over the global batch whose statistics are global
            already (a model saved with it loads on every backend). Defaults to `False`.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Example:
    >>> import numpy as np
    >>> block = PreNormConvBlock(8, kernel_size=3, strides=2, norm="instance")
    >>> tuple(block(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 16, 16, 8)

    Reference:
    - [Baydar et al., Cross-Domain Segmentation with Adversarial Loss and Covariate Shift for Biomedical
      Imaging](https://arxiv.org/abs/2006.04390)
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        norm="batch",
        norm_first=True,
        activation="prelu",
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"`filters` must be a positive int. Received: filters={filters}")
        if not isinstance(kernel_size, int) or kernel_size < 1:
            raise ValueError(f"`kernel_size` must be a positive int. Received: kernel_size={kernel_size}")
        if not isinstance(strides, int) or strides < 1:
            raise ValueError(f"`strides` must be a positive int. Received: strides={strides}")
        if norm not in NORMS:
            raise ValueError(f"`norm` must be one of {NORMS}. Received: norm={norm!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.norm = norm
        self.norm_first = norm_first
        self.activation = activation
        self.synchronized = synchronized

        # A bias right before a normalization that re-centres its output is dead weight.
        self.conv = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=norm is None or norm_first,
            kernel_initializer="he_normal",
            dtype=self.dtype_policy,
            name=f"{self.name}_conv",
        )
        self.norm_layer = self._make_norm()
        if activation == "prelu":
            self.activation_layer = keras.layers.PReLU(
                shared_axes=[1, 2], dtype=self.dtype_policy, name=f"{self.name}_prelu"
            )
        elif activation is None:
            self.activation_layer = None
        else:
            self.activation_layer = keras.layers.Activation(
                activation, dtype=self.dtype_policy, name=f"{self.name}_activation"
            )

    def _make_norm(self):
        if self.norm == "batch":
            return keras.layers.BatchNormalization(
                synchronized=self.synchronized and keras.backend.backend() == "tensorflow",
                dtype=self.dtype_policy,
                name=f"{self.name}_norm",
            )
        if self.norm == "instance":
            return keras.layers.GroupNormalization(groups=-1, dtype=self.dtype_policy, name=f"{self.name}_norm")
        return None

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.norm_layer is not None and self.norm_first:
            self.norm_layer.build(shape)
        self.conv.build(shape)
        shape = self.conv.compute_output_shape(shape)
        if self.norm_layer is not None and not self.norm_first:
            self.norm_layer.build(shape)
        if self.activation_layer is not None:
            self.activation_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.norm_layer is not None and self.norm_first:
            x = self.norm_layer(x, training=training)
        x = self.conv(x)
        if self.norm_layer is not None and not self.norm_first:
            x = self.norm_layer(x, training=training)
        if self.activation_layer is not None:
            x = self.activation_layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "norm": self.norm,
                "norm_first": self.norm_first,
                "activation": self.activation,
                "synchronized": self.synchronized,
            }
        )
        return config
